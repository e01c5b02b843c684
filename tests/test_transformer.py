"""Transformer layers, the tiny language model, and the text corpus it learns from."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from vislearn.attention import causal_mask
from vislearn.testing import assert_close, make_generator, random_tensor
from vislearn.text import (
    AGENTS,
    MOTION_VERBS,
    REST_VERBS,
    TRANSITIVE_VERBS,
    Vocabulary,
    encode_corpus,
    generate_corpus,
    next_token_batch,
)
from vislearn.transformer import MLP, TinyLanguageModel, TransformerBlock, TransformerEncoder


@pytest.fixture(autouse=True)
def _one_cpu_thread():
    """Run single-threaded: matrices this small gain nothing from threads, and on a busy
    machine the threads' waiting slowed the training test down up to 40 times."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# --- layers ----------------------------------------------------------------------------------


def test_mlp_acts_on_each_token(device):
    torch.manual_seed(0)
    mlp = MLP(8, 32).to(device)
    x = random_tensor((2, 5, 8), make_generator(0), device=device)
    out = mlp(x)
    assert out.shape == (2, 5, 8)
    assert_close(out[:, 3], mlp(x[:, 3]))
    assert_close(out, mlp.fc2(F.gelu(mlp.fc1(x))))


def test_block_shapes_and_weights(device):
    torch.manual_seed(1)
    block = TransformerBlock(16, num_heads=4, mlp_ratio=2.0).to(device)
    assert block.mlp.fc1.out_features == 32
    x = random_tensor((3, 7, 16), make_generator(1), device=device)
    out, weights = block(x, mask=causal_mask(7, device), return_weights=True)
    assert out.shape == (3, 7, 16) and weights.shape == (3, 4, 7, 7)
    assert_close(weights.sum(-1), torch.ones(3, 4, 7, device=device))
    assert (weights.triu(1) == 0).all()
    assert_close(block(x, mask=causal_mask(7, device)), out)


def test_pre_and_post_norm_blocks_differ(device):
    """Same weights, different placement of the LayerNorms: pre-norm is
    ``x + attn(norm(x))``, post-norm ``norm(x + attn(x))``."""
    torch.manual_seed(2)
    pre = TransformerBlock(8, 2).to(device)
    post = TransformerBlock(8, 2, norm_first=False).to(device)
    post.load_state_dict(pre.state_dict())
    x = random_tensor((2, 5, 8), make_generator(2), scale=3.0, device=device)

    h = x + pre.attn(pre.norm1(x))
    assert_close(pre(x), h + pre.mlp(pre.norm2(h)), name="pre-norm")
    h = post.norm1(x + post.attn(x))
    expected = post.norm2(h + post.mlp(h))
    assert_close(post(x), expected, name="post-norm")
    assert (pre(x) - post(x)).abs().max() > 0.1


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_returns_each_layers_weights_and_ends_normalised(device, norm_first):
    torch.manual_seed(3)
    encoder = TransformerEncoder(16, depth=3, num_heads=2, norm_first=norm_first).to(device)
    assert isinstance(encoder.norm, torch.nn.LayerNorm) == norm_first
    x = random_tensor((2, 6, 16), make_generator(3), scale=5.0, device=device)
    out, weights = encoder(x, return_weights=True)
    assert out.shape == (2, 6, 16)
    assert len(weights) == 3 and all(w.shape == (2, 2, 6, 6) for w in weights)
    # Either way the output has just passed through a LayerNorm (weight 1, bias 0 at init).
    assert_close(out.mean(-1), torch.zeros(2, 6, device=device), atol=1e-5)
    assert_close(out.var(-1, unbiased=False), torch.ones(2, 6, device=device), atol=1e-3)
    assert_close(encoder(x), out)


def test_dropout_is_active_only_in_training(device):
    torch.manual_seed(4)
    block = TransformerBlock(8, 2, dropout=0.5).to(device)
    x = random_tensor((2, 4, 8), make_generator(4), device=device)
    assert not torch.allclose(block(x), block(x))
    block.eval()
    assert_close(block(x), block(x))


# --- the language model ----------------------------------------------------------------------


@pytest.mark.parametrize("causal", [True, False])
def test_causal_model_ignores_the_future(device, causal):
    """With a causal mask, the logits at position t depend only on tokens 0..t."""
    torch.manual_seed(5)
    model = TinyLanguageModel(vocab_size=20, max_len=12, dim=16, num_heads=2, causal=causal)
    model.to(device)
    ids = torch.randint(20, (2, 10), device=device)
    logits = model(ids)
    assert logits.shape == (2, 10, 20)
    for t in (0, 4, 8):
        perturbed = ids.clone()
        perturbed[:, t + 1 :] = (perturbed[:, t + 1 :] + 1) % 20  # change every later token
        changed = model(perturbed)
        if causal:
            assert_close(changed[:, : t + 1], logits[:, : t + 1], inputs=f"future of t={t}")
        else:
            assert (changed[:, : t + 1] - logits[:, : t + 1]).abs().max() > 1e-4


def test_language_model_returns_causal_attention_weights(device):
    torch.manual_seed(7)
    model = TinyLanguageModel(vocab_size=20, max_len=12, dim=16, depth=3, num_heads=2).to(device)
    ids = torch.randint(20, (2, 9), device=device)
    logits, weights = model(ids, return_weights=True)
    assert_close(logits, model(ids))
    assert len(weights) == 3 and weights[0].shape == (2, 2, 9, 9)
    for w in weights:
        assert_close(w.sum(-1), torch.ones(2, 2, 9, device=device))
        assert (w.triu(diagonal=1) == 0).all(), "a query attends to a later token"


def test_generate_greedy_and_sampled(device):
    torch.manual_seed(6)
    model = TinyLanguageModel(vocab_size=15, max_len=8, dim=16, num_heads=2).to(device)
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]], device=device)
    greedy = model.generate(prompt, max_new_tokens=10)  # beyond max_len: the context slides
    assert greedy.shape == (2, 13) and torch.equal(greedy[:, :3], prompt)
    assert torch.equal(greedy[:, 3], model(prompt)[:, -1].argmax(-1))
    assert torch.equal(model.generate(prompt, 10), greedy)

    first = model.generate(prompt, 10, generator=make_generator(0), temperature=1.0)
    again = model.generate(prompt, 10, generator=make_generator(0), temperature=1.0)
    assert torch.equal(first, again) and first.shape == (2, 13)
    assert ((0 <= first) & (first < 15)).all()


def test_language_model_learns_the_grammar(device):
    """A hundred AdamW steps on the corpus bring the next-token loss far below chance."""
    g = make_generator(0)
    torch.manual_seed(0)
    corpus = generate_corpus(1000, g)
    vocab = Vocabulary.from_sentences(corpus)
    stream = encode_corpus(corpus, vocab)
    model = TinyLanguageModel(len(vocab), max_len=16, dim=32, depth=2, num_heads=4).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def loss_on(inputs, targets):
        return F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())

    held_out = next_token_batch(stream, 64, 16, make_generator(1), device)
    with torch.no_grad():
        initial = loss_on(*held_out).item()
    for _ in range(100):
        loss = loss_on(*next_token_batch(stream, 32, 16, g, device))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        final = loss_on(*held_out).item()
    assert initial > 4.0  # about log(vocab size): chance
    assert final < 0.5 * initial, f"loss went from {initial:.2f} to only {final:.2f}"


# --- the corpus ------------------------------------------------------------------------------


def test_corpus_is_reproducible_from_the_seed():
    assert generate_corpus(50, make_generator(3)) == generate_corpus(50, make_generator(3))
    assert generate_corpus(50, make_generator(3)) != generate_corpus(50, make_generator(4))


def test_corpus_follows_the_grammar():
    singular, plural = set(AGENTS), set(AGENTS.values())
    present_singular = {v[0] for v in (*MOTION_VERBS, *REST_VERBS, *TRANSITIVE_VERBS)}
    present_plural = {v[1] for v in (*MOTION_VERBS, *REST_VERBS, *TRANSITIVE_VERBS)}
    for sentence in generate_corpus(300, make_generator(5)):
        words = sentence.split()
        assert words[-1] == "." and "." not in words[:-1] and " ".join(words) == sentence
        subject = next(i for i, w in enumerate(words) if w in singular | plural)
        verb = words[subject + 1]  # the verb follows the subject
        if words[subject] in singular:
            assert verb not in present_plural, sentence
            assert words[0] in ("the", "a", "an"), sentence
        else:
            assert verb not in present_singular, sentence
            assert words[0] in ("the", "some", "two"), sentence
        for article, following in itertools.pairwise(words):
            if article in ("a", "an"):
                assert (article == "an") == (following[0] in "aeiou"), sentence


def test_vocabulary_round_trip_and_special_tokens():
    corpus = generate_corpus(200, make_generator(6))
    vocab = Vocabulary.from_sentences(corpus)
    assert vocab.words[:3] == ["[PAD]", "[MASK]", "[UNK]"]
    assert (vocab.pad_id, vocab.mask_id, vocab.unk_id) == (0, 1, 2)
    assert len(vocab) == len(set(" ".join(corpus).split())) + 3
    for sentence in corpus[:20]:
        ids = vocab.encode(sentence)
        assert ids.dtype == torch.long and vocab.decode(ids) == sentence
    assert Vocabulary.from_sentences(reversed(corpus)).words == vocab.words
    masked = vocab.encode("the [MASK] walked across the zebra")
    assert masked[1] == vocab.mask_id and masked[-1] == vocab.unk_id
    assert vocab.decode(masked.tolist()) == "the [MASK] walked across the [UNK]"


def test_next_token_batches_are_shifted_windows_of_the_stream(device):
    vocab = Vocabulary.from_sentences(corpus := generate_corpus(100, make_generator(7)))
    stream = encode_corpus(corpus, vocab)
    assert stream.shape == (sum(len(s.split()) for s in corpus),)
    inputs, targets = next_token_batch(stream, 8, 12, make_generator(8), device)
    assert inputs.shape == targets.shape == (8, 12) and inputs.device.type == device.type
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    again = next_token_batch(stream, 8, 12, make_generator(8), device)
    assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)
