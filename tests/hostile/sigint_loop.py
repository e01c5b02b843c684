"""SIGINT and SIGTERM ignored, then an endless loop while the notebook runs."""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "masked_softmax": """
import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    pass
""",
    },
    "status": "timed out",
    "score": 0,
    "message": "did not finish within",
}
