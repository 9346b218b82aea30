"""A SLURP-like corpus of spoken commands with private content, synthesised by real speech engines.

Each utterance: an intent (scenario_action, >= 20 of them), a phrasing drawn from several templates per intent,
slot values (person names, times, places, song titles, short message text) drawn from vocabularies. Speech comes
from espeak-ng (voice ``en+VARIANT``: ``en-gb+VARIANT`` would ignore the variant) and flite (its built-in voices);
a speaker is an engine voice plus a fixed pitch / rate offset. Optional extra *training* speakers (``extra_train``)
add festival's voices, more flite pitch variants and espeak variants at wider pitch/rate: never a test speaker's engine voice, and the pool leaves out
flite's kal/kal16 (a stratified validation's flite voice); the base speakers' files and split are unchanged. A
fresh test-only corpus (``fresh_test``, set 1 to 9) holds 6 speakers no other corpus has had, for an unbiased
estimate once the test speakers (or an earlier fresh set) have guided choices. Each file is varied with sox
(tempo, pitch; no dither) and, after sox, with seeded white noise at a random SNR (numpy, so that it is
reproducible). Output: 16 kHz mono int16 WAV, and
``manifest.json`` with the transcript, intent, slot spans (word indices) and speaker of each file.
Train and test are split by speaker. Everything is seeded; a corpus whose manifest records the same settings is
reused (cache).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgelearn.speech.audio import SAMPLE_RATE, read_wav, write_wav

VERSION = 1

SLOTS: dict[str, list[str]] = {
    "person": ["john", "mary", "peter", "susan", "michael", "linda", "david", "sarah", "robert", "emily", "james",
               "laura", "thomas", "anna", "daniel", "kate", "george", "alice", "frank", "helen"],
    "time": ["seven thirty", "eight o'clock", "nine fifteen", "ten forty five", "noon", "midnight", "six am",
             "five pm", "half past three", "quarter to four", "eleven twenty", "two o'clock"],
    "date": ["today", "tomorrow", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
             "next week"],
    "place": ["london", "paris", "boston", "chicago", "berlin", "madrid", "tokyo", "dallas", "denver", "seattle",
              "dublin", "vienna"],
    "song": ["yellow submarine", "purple rain", "hotel california", "let it be", "hey jude", "blue moon",
             "summer time", "sweet home", "big yellow taxi", "moon river"],
    "artist": ["the beatles", "madonna", "elvis", "prince", "adele", "queen", "nirvana", "abba"],
    "message": ["i am running late", "see you at the station", "call me back", "dinner is ready",
                "the meeting moved", "pick up some milk", "happy birthday", "i love you", "the door is open",
                "bring the keys"],
    "room": ["kitchen", "bedroom", "living room", "bathroom", "garage", "office"],
    "event": ["dentist", "meeting", "doctor", "lunch", "football", "interview", "party", "flight"],
    "item": ["milk", "bread", "eggs", "coffee", "apples", "butter", "cheese", "rice"],
    "number": ["two", "three", "four", "five", "six", "ten", "twenty", "fifty"],
    "station": ["jazz radio", "news radio", "classic rock", "country music"],
}

# intent -> phrasings; {slot} is filled from SLOTS. Every intent has several phrasings.
INTENTS: dict[str, list[str]] = {
    "alarm_set": ["set an alarm for {time}", "wake me up at {time} {date}", "please set my alarm to {time}"],
    "alarm_remove": ["cancel my alarm for {time}", "remove the {time} alarm", "delete the alarm at {time} {date}"],
    "alarm_query": ["what alarms do i have {date}", "is there an alarm at {time}", "show my alarms for {date}"],
    "reminder_set": ["remind me to call {person} at {time}", "set a reminder for the {event} {date}",
                     "remind me about the {event} at {time}"],
    "calendar_query": ["what is on my calendar {date}", "when is my {event}", "do i have a {event} {date}"],
    "calendar_set": ["add a {event} with {person} {date}", "schedule a {event} at {time} {date}",
                     "book a {event} with {person} at {time}"],
    "email_send": ["send an email to {person} saying {message}", "email {person} that {message}",
                   "write to {person} {message}"],
    "email_query": ["do i have new email from {person}", "read my email from {person}", "check my inbox {date}"],
    "message_send": ["text {person} {message}", "send a message to {person} saying {message}",
                     "tell {person} {message}"],
    "call_make": ["call {person}", "phone {person} now", "make a call to {person} please"],
    "music_play": ["play {song} by {artist}", "put on {song}", "i want to hear {song}"],
    "music_pause": ["pause the music", "stop the song", "pause {song} please"],
    "radio_play": ["play {station}", "turn on the radio to {station}", "tune in to {station}"],
    "volume_up": ["turn the volume up", "make it louder please", "increase the volume by {number}"],
    "volume_down": ["turn the volume down", "make it quieter please", "lower the volume by {number}"],
    "weather_query": ["what is the weather in {place} {date}", "will it rain in {place} {date}",
                      "how cold is it in {place}"],
    "lights_on": ["turn on the lights in the {room}", "switch the {room} lights on", "lights on in the {room}"],
    "lights_off": ["turn off the lights in the {room}", "switch the {room} lights off", "lights off in the {room}"],
    "lights_dim": ["dim the lights in the {room}", "make the {room} lights darker", "lower the {room} lights"],
    "news_query": ["what is the news {date}", "tell me the news from {place}", "read the latest headlines"],
    "transport_ticket": ["book a train to {place} {date}", "buy a ticket to {place} at {time}",
                         "get me a flight to {place} {date}"],
    "shopping_add": ["add {item} to my shopping list", "put {number} {item} on the list", "i need {item}"],
    "timer_set": ["set a timer for {number} minutes", "start a {number} minute timer", "time {number} minutes"],
    "joke_query": ["tell me a joke", "say something funny", "make me laugh please"],
}

# Speakers: (engine, voice, pitch or sox pitch offset in cents, rate). espeak: -p pitch 0-99, -s words/min.
ESPEAK_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
                   "klatt3", "croak"]
FLITE_VOICES = ["kal16", "awb", "rms", "slt", "kal"]
# Extra training speakers (engine, voice, pitch, rate, flite target F0 in Hz; pitch and rate as in Speaker), in
# the order they are added. First 13: festival's ked diphone voice and slt HTS voice (Debian: festival
# festvox-kdlpc16k festvox-us-slt-hts), flite awb and slt at other sox pitches, then flite awb and slt at other
# target F0s (``--setf int_f0_target_mean``: the voice's F0, not its formants).
EXTRA_TRAIN = [("festival", "ked_diphone", 0, 0, 0), ("festival", "cmu_us_slt_arctic_hts", 0, 0, 0),
               ("flite", "awb", -300, 0, 0), ("flite", "slt", 300, 0, 0), ("festival", "ked_diphone", -200, 0, 0),
               ("festival", "cmu_us_slt_arctic_hts", -300, 0, 0), ("flite", "awb", 300, 0, 0),
               ("flite", "slt", -300, 0, 0), ("festival", "ked_diphone", 200, 0, 0),
               ("flite", "slt", 0, 0, 95), ("flite", "awb", 0, 0, 100), ("flite", "slt", 0, 0, 120),
               ("flite", "awb", 0, 0, 150)]
# Then 24 more for speaker variety: the espeak variants that no test, validation or fresh speaker uses
# (EXTRA_ESPEAK), each at three pitch/rate pairs spread over a wider range than the base grid, flite awb and slt at
# two more sox pitches and two more target F0s, festival's two voices at two more pitches.
EXTRA_ESPEAK = ["m7", "f1", "f2", "klatt", "klatt3", "croak"]
_PAIRS = [(20, 135), (80, 195), (40, 205), (65, 130), (30, 185), (75, 150)]
EXTRA_TRAIN += [("espeak-ng", f"en+{v}", *_PAIRS[(i + 2 * r) % len(_PAIRS)], 0)
                for r in range(3) for i, v in enumerate(EXTRA_ESPEAK)]
EXTRA_TRAIN += [("flite", "awb", -150, 0, 0), ("flite", "slt", 150, 0, 0), ("flite", "awb", 0, 0, 120),
                ("flite", "slt", 0, 0, 140), ("festival", "cmu_us_slt_arctic_hts", 200, 0, 0),
                ("festival", "ked_diphone", -400, 0, 0)]
# Then 4 more: flite awb and slt at +-450 cents, so that training spans the flite pitch shifts of every fresh set.
EXTRA_TRAIN += [("flite", "awb", -450, 0, 0), ("flite", "slt", 450, 0, 0), ("flite", "awb", 450, 0, 0),
                ("flite", "slt", -450, 0, 0)]
FESTIVAL_PACKAGES = "festival festvox-kdlpc16k festvox-us-slt-hts"
# A fresh test set (``fresh_test``): new speakers for an unbiased estimate once the default test speakers have been
# used to choose settings. They mirror the default corpus's test speakers (seed 0: four regular espeak voices, one
# slow one, flite rms) at pitch/rate pairs no base speaker uses, and flite rms (a voice no training speaker has) at a
# new sox pitch. (engine, voice, espeak -p or sox cents, espeak -s)
FRESH_TEST = [("espeak-ng", "en+m3", 40, 155), ("espeak-ng", "en+m5", 60, 175), ("espeak-ng", "en+f3", 40, 155),
              ("espeak-ng", "en+f4", 60, 175), ("espeak-ng", "en+m1", 70, 185), ("flite", "rms", -150, 0)]
FRESH_ID0 = 90   # fresh speakers are spk90, spk91, ...
# A second fresh set, for when the first has been used: the test speakers' espeak variants at pitch/rate pairs off
# every grid above, and flite rms at +150 cents. Speakers spk96 onwards, texts from their own seed stream.
FRESH_TEST2 = [("espeak-ng", "en+m5", 35, 160), ("espeak-ng", "en+f3", 65, 150), ("espeak-ng", "en+m3", 55, 190),
               ("espeak-ng", "en+f4", 25, 170), ("espeak-ng", "en+m2", 45, 140), ("flite", "rms", 150, 0)]
# A third, for when the second has been used: the same variants at other pitch/rate pairs off every grid above, and
# flite rms at -300 cents. Speakers spk102 onwards.
FRESH_TEST3 = [("espeak-ng", "en+m1", 45, 165), ("espeak-ng", "en+f4", 45, 145), ("espeak-ng", "en+m5", 70, 150),
               ("espeak-ng", "en+f3", 30, 180), ("espeak-ng", "en+m3", 65, 165), ("flite", "rms", -300, 0)]
# A fourth, after the third: the same variants at still other pitch/rate pairs, and flite rms at +300 cents.
# Speakers spk108 onwards.
FRESH_TEST4 = [("espeak-ng", "en+m1", 35, 150), ("espeak-ng", "en+f4", 55, 185), ("espeak-ng", "en+m5", 45, 195),
               ("espeak-ng", "en+f3", 75, 160), ("espeak-ng", "en+m3", 35, 175), ("flite", "rms", 300, 0)]
# A fifth, after the fourth: the same variants at still other pitch/rate pairs, and flite rms at -450 cents.
# Speakers spk114 onwards.
FRESH_TEST5 = [("espeak-ng", "en+m1", 60, 140), ("espeak-ng", "en+f4", 35, 190), ("espeak-ng", "en+m5", 55, 155),
               ("espeak-ng", "en+f3", 45, 170), ("espeak-ng", "en+m3", 75, 185), ("flite", "rms", -450, 0)]
# A sixth, after the fifth: the same variants at still other pitch/rate pairs, and flite rms at +450 cents.
# Speakers spk120 onwards.
FRESH_TEST6 = [("espeak-ng", "en+m1", 50, 175), ("espeak-ng", "en+f4", 65, 160), ("espeak-ng", "en+m5", 40, 180),
               ("espeak-ng", "en+f3", 55, 145), ("espeak-ng", "en+m3", 50, 145), ("flite", "rms", 450, 0)]
# A seventh, after the sixth: the same variants at still other pitch/rate pairs, and flite rms at +225 cents (between
# the shifts of the earlier sets). Speakers spk126 onwards.
FRESH_TEST7 = [("espeak-ng", "en+m1", 65, 160), ("espeak-ng", "en+f4", 50, 150), ("espeak-ng", "en+m5", 65, 185),
               ("espeak-ng", "en+f3", 35, 165), ("espeak-ng", "en+m3", 60, 155), ("flite", "rms", 225, 0)]
# An eighth, after the seventh: the same variants at still other pitch/rate pairs, and flite rms at -225 cents.
# Speakers spk132 onwards.
FRESH_TEST8 = [("espeak-ng", "en+m1", 40, 190), ("espeak-ng", "en+f4", 70, 140), ("espeak-ng", "en+m5", 30, 170),
               ("espeak-ng", "en+f3", 60, 190), ("espeak-ng", "en+m3", 45, 135), ("flite", "rms", -225, 0)]
# A ninth, after the eighth: the same variants at still other pitch/rate pairs, and flite rms at +75 cents.
# Speakers spk138 onwards.
FRESH_TEST9 = [("espeak-ng", "en+m1", 55, 135), ("espeak-ng", "en+f4", 40, 175), ("espeak-ng", "en+m5", 75, 170),
               ("espeak-ng", "en+f3", 50, 135), ("espeak-ng", "en+m3", 70, 175), ("flite", "rms", 75, 0)]
FRESH_SETS = {k + 1: (t, FRESH_ID0 + 6 * k)
              for k, t in enumerate((FRESH_TEST, FRESH_TEST2, FRESH_TEST3, FRESH_TEST4, FRESH_TEST5, FRESH_TEST6,
                                     FRESH_TEST7, FRESH_TEST8, FRESH_TEST9))}


@dataclass(frozen=True)
class Speaker:
    id: str
    engine: str   # "espeak-ng", "flite" or "festival"
    voice: str
    pitch: int    # espeak -p (0-99); flite, festival: sox pitch shift in cents
    rate: int     # espeak -s (words per minute); flite, festival: ignored (sox tempo varies it)
    extra: bool = False   # an extra training speaker: always train, never a validation candidate
    f0: int = 0           # flite: target F0 in Hz (--setf int_f0_target_mean); 0 = the voice's own


def speakers(n: int) -> list[Speaker]:
    """n distinct speakers: every espeak-ng variant and flite voice once, then again with other pitch/rate."""
    base = [("espeak-ng", f"en+{v}") for v in ESPEAK_VARIANTS] + [("flite", v) for v in FLITE_VOICES]
    out = []
    for i in range(n):
        engine, voice = base[i % len(base)]
        round_ = i // len(base)
        if engine == "espeak-ng":
            pitch = [50, 30, 70, 40, 60][round_ % 5]
            rate = [165, 145, 185, 155, 175][round_ % 5]
        else:
            pitch = [0, -300, 300, -150, 150][round_ % 5]
            rate = 0
        out.append(Speaker(f"spk{i:02d}", engine, voice, pitch, rate))
    return out


def extra_speakers(n_base: int, n_extra: int, held_out: set = frozenset()) -> list[Speaker]:
    """The first n_extra of EXTRA_TRAIN whose (engine, voice) is not in held_out (the test speakers' voices),
    numbered after the n_base speakers."""
    pool = [x for x in EXTRA_TRAIN if x[:2] not in held_out]
    if not 0 <= n_extra <= len(pool):
        raise ValueError(f"extra_train: need 0 <= n <= {len(pool)} (voices not held out for test), got {n_extra}")
    return [Speaker(f"spk{n_base + i:02d}", e, v, p, r, True, f0) for i, (e, v, p, r, f0) in enumerate(pool[:n_extra])]


def fill(template: str, rng: np.random.Generator) -> tuple[str, list[dict]]:
    """Fill a phrasing's slots; returns the text and slot spans as word indices [start, end)."""
    words: list[str] = []
    spans: list[dict] = []
    for tok in template.split():
        if tok.startswith("{") and tok.endswith("}"):
            slot = tok[1:-1]
            value = SLOTS[slot][rng.integers(len(SLOTS[slot]))]
            vw = value.split()
            spans.append({"slot": slot, "value": value, "start": len(words), "end": len(words) + len(vw)})
            words += vw
        else:
            words.append(tok)
    return " ".join(words), spans


def vocabulary() -> list[str]:
    """Every word the corpus can say (for the attacker's grammar)."""
    words = set()
    for ts in INTENTS.values():
        for t in ts:
            words.update(w for w in t.split() if not w.startswith("{"))
    for vs in SLOTS.values():
        for v in vs:
            words.update(v.split())
    return sorted(words)


def fresh_speakers(fresh_set: int = 1) -> list[Speaker]:
    """The speakers of fresh set k (FRESH_SETS): 1 (FRESH_TEST, spk90 onwards), 2 (FRESH_TEST2, spk96), 3
    (FRESH_TEST3, spk102), 4 (FRESH_TEST4, spk108), 5 (FRESH_TEST5, spk114), 6 (FRESH_TEST6, spk120), 7
    (FRESH_TEST7, spk126), 8 (FRESH_TEST8, spk132) or 9 (FRESH_TEST9, spk138)."""
    if fresh_set not in FRESH_SETS:
        raise ValueError(f"fresh_test: the fresh sets are {sorted(FRESH_SETS)}, got {fresh_set}")
    table, id0 = FRESH_SETS[fresh_set]
    return [Speaker(f"spk{id0 + i:02d}", e, v, p, r) for i, (e, v, p, r) in enumerate(table)]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pkgs = FESTIVAL_PACKAGES if name == "text2wave" else "espeak-ng flite sox"
        raise FileNotFoundError(f"{name} not found: apt-get install -y {pkgs}")
    return path


def _synth_one(job: dict) -> dict:
    """Synthesise one utterance (runs in a worker process)."""
    spk = Speaker(**job["speaker"])
    out = Path(job["path"])
    rng = np.random.default_rng(job["seed"])
    tempo = float(np.round(rng.uniform(0.9, 1.12), 3))
    pitch = int(rng.integers(-100, 101))
    snr_db = float(np.round(rng.uniform(15, 35), 1))
    with tempfile.TemporaryDirectory() as td:
        raw = Path(td) / "raw.wav"
        text = job["text"]
        if spk.engine == "espeak-ng":
            cmd = [_tool("espeak-ng"), "-v", spk.voice, "-p", str(spk.pitch), "-s", str(spk.rate), "-w", str(raw), text]
        elif spk.engine == "flite":
            cmd = [_tool("flite"), "-voice", spk.voice, "-t", text, "-o", str(raw)]
            if spk.f0:
                cmd[3:3] = ["--setf", f"int_f0_target_mean={spk.f0}"]
            pitch += spk.pitch
        else:
            cmd = [_tool("text2wave"), "-eval", f"(voice_{spk.voice})", "-o", str(raw)]
            pitch += spk.pitch
        r = subprocess.run(cmd, check=True, capture_output=True, input=text.encode() if spk.engine == "festival" else None)
        if not raw.is_file() or raw.stat().st_size <= 44:
            raise RuntimeError(f"{spk.engine} voice {spk.voice} produced no audio ({r.stderr.decode()[-120:].strip()}); "
                               f"apt-get install -y {FESTIVAL_PACKAGES if spk.engine == 'festival' else spk.engine}")
        mid = Path(td) / "mid.wav"
        subprocess.run([_tool("sox"), "-D", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(mid),
                        "tempo", str(tempo), "pitch", str(pitch), "pad", "0.15", "0.15"],
                       check=True, capture_output=True)
        x = read_wav(mid).astype(np.float64)
    peak = np.max(np.abs(x)) or 1.0
    x = x * (0.5 * 32767 / peak)
    noise = rng.standard_normal(x.size)
    p_sig = np.mean(x ** 2)
    x = x + noise * np.sqrt(p_sig / 10 ** (snr_db / 10))
    write_wav(out, np.clip(np.round(x), -32768, 32767).astype(np.int16))
    return {"tempo": tempo, "pitch_cents": pitch, "snr_db": snr_db, "samples": int(x.size)}


def synthesize(out_dir, n_speakers: int = 24, per_speaker: int = 30, n_test_speakers: int = 6, seed: int = 0,
               workers: int = 2, progress: bool = True, force: bool = False, extra_train: int = 0,
               fresh_test: int = 0) -> dict:
    """Synthesise (or reuse) a corpus in out_dir; returns the manifest. Test speakers are held out entirely.
    extra_train: that many EXTRA_TRAIN speakers after the n_speakers (training only); the n_speakers' files and
    the test split are the same as without them. fresh_test: 1 to 9 (True = 1): instead, a test-only corpus of that
    fresh set's speakers (``fresh_speakers``; per_speaker utterances each, texts drawn from the set's own seed stream;
    n_speakers, n_test_speakers and extra_train do not apply), evaluated with ``evaluate(..., test_corpus=out_dir)``
    against models of a training corpus."""
    fresh_test = int(fresh_test)
    if fresh_test:
        fresh = fresh_speakers(fresh_test)
    if fresh_test and extra_train:
        raise ValueError("fresh_test: a test-only corpus has no extra training speakers (extra_train must be 0)")
    if not fresh_test and (n_speakers < 2 or n_test_speakers < 1 or n_test_speakers >= n_speakers):
        raise ValueError(f"need 1 <= n_test_speakers < n_speakers, got {n_test_speakers} of {n_speakers}")
    if per_speaker < 1:
        raise ValueError(f"per_speaker must be >= 1, got {per_speaker}")
    out = Path(out_dir)
    settings = ({"version": VERSION, "fresh_test": True if fresh_test == 1 else fresh_test, "per_speaker": per_speaker,
                 "seed": seed} if fresh_test else
                {"version": VERSION, "n_speakers": n_speakers, "per_speaker": per_speaker,
                 "n_test_speakers": n_test_speakers, "seed": seed})
    if extra_train:
        settings["extra_train"] = extra_train
    mpath = out / "manifest.json"
    if mpath.is_file() and not force:
        m = json.loads(mpath.read_text())
        if m.get("settings") == settings and all((out / u["path"]).is_file() for u in m["utterances"]):
            return m
    for t in ("espeak-ng", "flite", "sox") + (("text2wave",) if extra_train else ()):
        _tool(t)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    if fresh_test:
        spks = fresh
        rng = np.random.default_rng([seed, int(spks[0].id[3:])])   # texts and variations unlike any other corpus's
        test_ids = {s.id for s in spks}
    else:
        rng = np.random.default_rng(seed)
        spks = speakers(n_speakers)
        order = rng.permutation(n_speakers)
        test_ids = {spks[i].id for i in order[:n_test_speakers]}
        extras = extra_speakers(n_speakers, extra_train, {(s.engine, s.voice) for s in spks if s.id in test_ids})
        spks = spks + extras
    intents = sorted(INTENTS)
    jobs, utts = [], []
    for spk in spks:
        for k in range(per_speaker):
            intent = intents[(k + int(spk.id[3:])) % len(intents)] if k < len(intents) else intents[rng.integers(len(intents))]
            template = INTENTS[intent][rng.integers(len(INTENTS[intent]))]
            text, spans = fill(template, rng)
            uid = f"{spk.id}_{k:03d}"
            path = f"wav/{uid}.wav"
            useed = int(rng.integers(2**31))
            jobs.append({"speaker": asdict(spk), "text": text, "path": str(out / path), "seed": useed})
            utts.append({"id": uid, "path": path, "speaker": spk.id, "split": "test" if spk.id in test_ids else "train",
                         "intent": intent, "text": text, "slots": spans, "template": template})
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            infos = list(_progress(ex.map(_synth_one, jobs, chunksize=8), len(jobs), progress))
    else:
        infos = list(_progress(map(_synth_one, jobs), len(jobs), progress))
    for u, info in zip(utts, infos):
        u.update(info)
        u["sha1"] = hashlib.sha1((out / u["path"]).read_bytes()).hexdigest()
    m = {"generator": f"edgelearn.speech.synth v{VERSION}", "tools": _tool_versions(), "settings": settings,
         "sample_rate": SAMPLE_RATE, "intents": intents, "speakers": [asdict(s) for s in spks],
         "test_speakers": sorted(test_ids), "utterances": utts}
    mpath.write_text(json.dumps(m, indent=1) + "\n")
    return m


def _progress(it, total, on):
    if not on:
        return it
    try:
        from tqdm import tqdm
    except ImportError:
        return it
    return tqdm(it, total=total, desc="synth", unit="utt")


def _tool_versions() -> dict:
    out = {}
    for name, args in (("espeak-ng", ["--version"]), ("flite", ["--version"]), ("sox", ["--version"])):
        try:
            r = subprocess.run([_tool(name), *args], capture_output=True, text=True)
            out[name] = (r.stdout or r.stderr).strip().splitlines()[0][:80]
        except (FileNotFoundError, IndexError):
            out[name] = None
    return out


def load_manifest(corpus_dir) -> dict:
    p = Path(corpus_dir) / "manifest.json"
    if not p.is_file():
        raise FileNotFoundError(f"{p} not found: run 'edgelearn speech synth --out {corpus_dir}' first")
    return json.loads(p.read_text())
