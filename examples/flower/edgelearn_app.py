"""The Flower App's components: edgelearn.fl.flower's ServerApp and ClientApp, with config paths also looked up
beside this file (the app folder travels to the SuperLink as a FAB)."""

from pathlib import Path

from edgelearn.fl.flower import make_client_app, make_server_app

HERE = Path(__file__).resolve().parent

server_app = make_server_app(base_dir=HERE)
client_app = make_client_app(base_dir=HERE)
