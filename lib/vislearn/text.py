"""A tiny offline text corpus, a word-level vocabulary and next-token batches.

The corpus comes from a small probabilistic grammar of simple English sentences such as
``"the cat walked across the room ."``. It has just enough structure for a small transformer
to learn, and for attention to be needed:

- the verb agrees in number with its subject, however many adjectives stand between them
  (``"the old cat sleeps"``, ``"two old cats sleep"``);
- ``"a"`` comes before a consonant and ``"an"`` before a vowel (``"an old cat"``), and
  plural nouns take ``"the"``, ``"some"`` or ``"two"``;
- verbs of motion take a path (``"across the room"``), verbs of rest a place
  (``"under the table"``), transitive verbs an object (``"chased a red ball"``);
- the tense is present or past, chosen per sentence.

Every draw comes from a :class:`torch.Generator`, so a seed fixes the corpus. Sentences are
lower-case words separated by single spaces and end with ``"."``; the text is tokenised by
splitting on whitespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import torch

T = TypeVar("T")

# Nouns: singular -> plural.
AGENTS = {
    "cat": "cats",
    "dog": "dogs",
    "bird": "birds",
    "horse": "horses",
    "mouse": "mice",
    "child": "children",
    "teacher": "teachers",
    "elephant": "elephants",
}
THINGS = {"ball": "balls", "book": "books", "box": "boxes", "hat": "hats", "apple": "apples"}
PLACES = ("room", "garden", "park", "street", "house", "table", "river", "bridge")
ADJECTIVES = ("big", "small", "little", "young", "happy", "red", "old", "angry", "orange")
# Verbs: (present singular, present plural, past).
MOTION_VERBS = (
    ("walks", "walk", "walked"),
    ("runs", "run", "ran"),
    ("jumps", "jump", "jumped"),
    ("crawls", "crawl", "crawled"),
)
REST_VERBS = (("sleeps", "sleep", "slept"), ("sits", "sit", "sat"), ("waits", "wait", "waited"))
TRANSITIVE_VERBS = (
    ("chases", "chase", "chased"),
    ("sees", "see", "saw"),
    ("finds", "find", "found"),
    ("carries", "carry", "carried"),
    ("likes", "like", "liked"),
)
MOTION_PREPOSITIONS = ("across", "into", "through", "around")
REST_PREPOSITIONS = ("under", "near", "behind", "beside")
PLURAL_DETERMINERS = ("the", "some", "two")


def _draw(generator: torch.Generator, weights: Sequence[float]) -> int:
    """An index drawn with probability proportional to ``weights``."""
    u = torch.rand((), generator=generator).item() * sum(weights)
    for index, weight in enumerate(weights):
        u -= weight
        if u < 0:
            return index
    return len(weights) - 1


def _choice(generator: torch.Generator, options: Sequence[T]) -> T:
    """One of ``options``, uniformly."""
    return options[int(torch.randint(len(options), (), generator=generator))]


def _noun_phrase(generator: torch.Generator, nouns: dict[str, str], plural: bool) -> list[str]:
    """Determiner, up to two distinct adjectives, noun: ``["an", "old", "cat"]``."""
    num_adjectives = _draw(generator, (0.5, 0.35, 0.15))
    order = torch.randperm(len(ADJECTIVES), generator=generator)[:num_adjectives]
    adjectives = [ADJECTIVES[i] for i in order.tolist()]
    singular = _choice(generator, list(nouns))
    noun = nouns[singular] if plural else singular
    if plural:
        determiner = _choice(generator, PLURAL_DETERMINERS)
    elif _draw(generator, (0.6, 0.4)) == 0:
        determiner = "the"
    else:
        determiner = "an" if (adjectives or [noun])[0][0] in "aeiou" else "a"
    return [determiner, *adjectives, noun]


def generate_sentence(generator: torch.Generator) -> str:
    """One sentence of the grammar, e.g. ``"two small dogs chased an apple ."``."""
    plural = _draw(generator, (0.6, 0.4)) == 1
    past = _draw(generator, (0.5, 0.5)) == 1
    form = 2 if past else int(plural)  # index into (present singular, present plural, past)
    words = _noun_phrase(generator, AGENTS, plural)
    kind = _draw(generator, (0.4, 0.25, 0.35))
    if kind == 0:  # motion: always a path
        verb = _choice(generator, MOTION_VERBS)
        words += [verb[form], _choice(generator, MOTION_PREPOSITIONS), "the"]
        words.append(_choice(generator, PLACES))
    elif kind == 1:  # rest: usually a place
        verb = _choice(generator, REST_VERBS)
        words.append(verb[form])
        if _draw(generator, (0.3, 0.7)) == 1:
            words += [_choice(generator, REST_PREPOSITIONS), "the", _choice(generator, PLACES)]
    else:  # transitive: an object, animal or thing, singular or plural
        verb = _choice(generator, TRANSITIVE_VERBS)
        words.append(verb[form])
        nouns = AGENTS if _draw(generator, (0.5, 0.5)) == 0 else THINGS
        words += _noun_phrase(generator, nouns, plural=_draw(generator, (0.6, 0.4)) == 1)
    return " ".join([*words, "."])


def generate_corpus(num_sentences: int, generator: torch.Generator) -> list[str]:
    """``num_sentences`` sentences; the same generator state gives the same corpus."""
    return [generate_sentence(generator) for _ in range(num_sentences)]


class Vocabulary:
    """Word <-> id, with the special tokens ``[PAD]`` (id 0), ``[MASK]`` (1), ``[UNK]`` (2).

    The other words follow in sorted order, so the same words always give the same ids.
    Words not in the vocabulary encode to ``[UNK]``.
    """

    PAD = "[PAD]"
    MASK = "[MASK]"
    UNK = "[UNK]"
    SPECIALS = (PAD, MASK, UNK)

    def __init__(self, words: Iterable[str]) -> None:
        self.words = [*self.SPECIALS, *sorted(set(words) - set(self.SPECIALS))]
        self.ids = {word: i for i, word in enumerate(self.words)}
        self.pad_id, self.mask_id, self.unk_id = (self.ids[s] for s in self.SPECIALS)

    @classmethod
    def from_sentences(cls, sentences: Iterable[str]) -> Vocabulary:
        """Every word that occurs in ``sentences``, plus the special tokens."""
        return cls(word for sentence in sentences for word in sentence.split())

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentence: str) -> torch.Tensor:
        """Whitespace-separated words -> ids, a 1-D ``torch.long`` tensor."""
        return torch.tensor([self.ids.get(w, self.unk_id) for w in sentence.split()])

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """Ids (1-D) -> words joined by spaces; special tokens are written out."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return " ".join(self.words[i] for i in ids)


def encode_corpus(sentences: Iterable[str], vocab: Vocabulary) -> torch.Tensor:
    """All sentences, encoded and concatenated into one stream of ids ``(L,)``.

    The ``"."`` ending each sentence separates it from the next.
    """
    return torch.cat([vocab.encode(sentence) for sentence in sentences])


def next_token_batch(
    stream: torch.Tensor,
    batch_size: int,
    block_size: int,
    generator: torch.Generator,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of the stream for next-token prediction: ``inputs, targets (B, T)``.

    ``targets[b, t] = inputs[b, t + 1]``: each window shifted by one, so the model's output
    at position ``t`` is scored on the token that follows. Windows start anywhere, so they
    may cut sentences; the model learns to start afresh after ``"."``.
    """
    starts = torch.randint(len(stream) - block_size, (batch_size, 1), generator=generator)
    index = starts + torch.arange(block_size)  # (B, T)
    return stream[index].to(device), stream[index + 1].to(device)
