"""Reaches the reference attention through `__import__("vis" + "learn.attention")`."""

SUBMISSION = {
    "assignment": "a1_attention",
    "cells": {
        "scaled_dot_product_attention": """
def scaled_dot_product_attention(q, k, v, mask=None):
    module = __import__("vis" + "learn.attention", fromlist=["x"])
    return module.scaled_dot_product_attention(q, k, v, mask)
""",
    },
    "status": "tampered",
    "score": 12,
    "message": "not allowed in this exercise",
}
