"""A network call: it only works outside the sandbox (pypi.org is reachable from the grading
machine), so the function raises."""

from tests.hostile._code import CORRECT_SOFTMAX

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": """
import socket
import urllib.request


def softmax(x, dim=-1):
    try:
        urllib.request.urlopen("https://pypi.org/simple/", timeout=2)
    except OSError:
        socket.create_connection(("151.101.0.223", 443), timeout=2).close()
"""
        + CORRECT_SOFTMAX,
    },
    "status": "graded",
    "score": 0,
}
