"""train_gat looks for the held-out labels outside the sandbox (the grading secret, the
solutions, the library's data code): none of them is there (15 + 4 points)."""

SUBMISSION = {
    "assignment": "a4_graphs",
    "cells": {
        "train_gat": """
def train_gat(x, edge_index, train_nodes, train_labels, num_classes):
    for path in ["@COURSE@/autograded/.grading_secret",
                 "@COURSE@/solutions/a4_graphs/a4_graphs.ipynb",
                 "@ROOT@/lib/vislearn/data.py"]:
        with open(path) as f:
            print(f.read())
""",
    },
    "status": "graded",
    "score": 19,
    "message": "No such file or directory",
}
