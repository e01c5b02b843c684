"""train_gat returns the weights of an untrained model: they load, and the accuracy measured on
the held-out nodes is at chance level, below the threshold's zero (15 + 4 points)."""

from tests.hostile._code import solution

SUBMISSION = {
    "assignment": "a4_graphs",
    "cells": {"train_gat": solution("a4_graphs", "train_gat").replace("range(60)", "range(0)")},
    "status": "graded",
    "score": 19,
    "message": "measured accuracy",
}
