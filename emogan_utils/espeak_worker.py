"""A small espeak-ng server: reads requests on stdin, answers int16 audio on stdout.

espeak-ng carries synthesis state from one utterance to the next, so every request is spoken
by a child forked from the freshly initialised engine: the same request gives the same bytes.
The process stays small (the standard library and ctypes only, no emogan imports) so that
forking it is cheap; :mod:`emogan_utils.synth` runs this file as a script
(``python -I -S espeak_worker.py LIBRARY DATA``).

Protocol: each request is a little-endian uint32 length and that many bytes of JSON (``text``,
``voice``, ``rate``, ``pitch``, ``pitch_range``, ``volume``, ``seed``); each answer is a uint32
length and that many bytes of int16 samples at 22050 Hz, or the length 0xFFFFFFFF alone when
the request failed (the traceback goes to stderr). The server ends when its stdin closes.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import struct
import sys
import traceback
from typing import BinaryIO

AUDIO_OUTPUT_SYNCHRONOUS, INITIALIZE_DONT_EXIT, POS_CHARACTER, CHARS_UTF8 = 2, 0x8000, 1, 1
PARAMETERS = {"rate": 1, "volume": 2, "pitch": 3, "pitch_range": 4}
CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                            ctypes.c_void_p)


def start(library: str, data: str) -> tuple[ctypes.CDLL, list[bytes]]:
    """Load and initialise libespeak-ng; return it and the list its callback fills."""
    lib = ctypes.CDLL(library)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), INITIALIZE_DONT_EXIT)
    if rate != 22050:
        raise RuntimeError(f"espeak-ng failed to start with data {data} (returned {rate})")
    chunks = []

    def collect(wav, n, events):
        if wav and n > 0:
            chunks.append(ctypes.string_at(wav, 2 * n))
        return 0

    lib._keep = CALLBACK(collect)  # C holds the pointer: keep the callback alive
    lib.espeak_SetSynthCallback(lib._keep)
    return lib, chunks


def speak(lib: ctypes.CDLL, chunks: list[bytes], request: dict) -> bytes:
    """Synthesise one request; int16 samples at 22050 Hz as bytes."""
    if lib.espeak_SetVoiceByName(request["voice"].encode()) != 0:
        raise RuntimeError(f"espeak-ng has no voice {request['voice']}")
    for name, param in PARAMETERS.items():
        lib.espeak_SetParameter(param, int(request[name]), 0)
    lib.espeak_ng_SetRandSeed(int(request["seed"]))
    text = ctypes.create_string_buffer(request["text"].encode())
    err = lib.espeak_Synth(text, len(text), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
    if err != 0:
        raise RuntimeError(f"espeak-ng could not say {request['text']!r} (error {err})")
    return b"".join(chunks)


def answer(lib: ctypes.CDLL, chunks: list[bytes], request: dict, out: BinaryIO) -> None:
    """Speak in a forked child (fresh state each time) and write the length-prefixed audio."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            audio = speak(lib, chunks, request)
            out.write(struct.pack("<I", len(audio)) + audio)
            out.flush()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        out.write(struct.pack("<I", 0xFFFFFFFF))
        out.flush()


def serve(library: str, data: str) -> None:
    """Answer requests until stdin closes (Ctrl-C is the client's business)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lib, chunks = start(library, data)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while header := stdin.read(4):
        request = json.loads(stdin.read(struct.unpack("<I", header)[0]))
        answer(lib, chunks, request, stdout)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
