"""A notebook file cut in the middle of its JSON."""

SUBMISSION = {"assignment": "a0_softmax", "cells": {}, "truncate": True,
              "status": "malformed", "score": 0, "message": "not valid JSON"}  # fmt: skip
