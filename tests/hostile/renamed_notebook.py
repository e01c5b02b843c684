"""The notebook was renamed before submission."""

SUBMISSION = {"assignment": "a0_softmax", "cells": {}, "notebook": "my_softmax.ipynb",
              "status": "missing notebook", "score": 0, "message": "my_softmax.ipynb"}  # fmt: skip
