"""Text datasets from CSV/TSV files and splits."""

from .text import Encoded, TextDataset, ag_news, load_text_csv, stratified_split, tokenize

__all__ = ["Encoded", "TextDataset", "ag_news", "load_text_csv", "stratified_split", "tokenize"]
