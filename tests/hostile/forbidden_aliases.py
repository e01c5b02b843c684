"""A forbidden function or class reached by another route than its name, written so that a scan
of names and strings alone finds nothing (names built with ``chr``, implicit concatenation):
with the grader that only replaced the listed names, each scored full marks on the exercise
that forbids it. Now every route is refused twice over: in the sandbox (torch's function and
dispatch modes refuse the function and its operators whatever Python name reached them, a
forbidden class refuses under every alias, forbidden packages are never imported) and by the
scan, which reports the construct the route needs (``torch._C``, ``torch.ops``, ``vars()`` of a
module, ``getattr`` with a computed name, ``__file__`` and ``exec``, ``gc`` and
``sys.modules``). Each is ``tampered`` and scores nothing on what it attacks."""

from tests.hostile._code import solution

SOFTMAX_ROUTES = {
    # torch._C._VariableFunctions.softmax, its name built with chr
    "torch_C_by_chr": "return getattr(torch._C._VariableFunctions,\n"
    "                   ''.join(map(chr, [115, 111, 102, 116, 109, 97, 120])))(x, dim)",
    # torch.ops.aten._softmax
    "torch_ops": "return getattr(torch.ops.aten, '_soft' + chr(109) + 'ax')(x, dim, False)",
    # a module's namespace: torch.special.softmax under its C name
    "vars_of_a_module": "return vars(torch._C._special)['special_' 'softmax'](x, dim)",
}

SDPA_FROM_C = """
def scaled_dot_product_attention(q, k, v, mask=None):
    function = getattr(torch._C._nn, "scaled_dot_product_" + chr(97) + "ttention")
    return function(q, k, v, attn_mask=mask)
"""

MHA_RECOMPILED = """
import torch.nn.functional as F


def multi_head_attention(x, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, num_heads):
    with open(F.__file__) as f:  # torch's own source, recompiled
        source = f.read()
    start = source.index("def multi_head_" + "attention_forward(")
    namespace = dict(vars(F))
    exec(source[start:source.index("\\ndef ", start + 1)], namespace)
    forward = namespace["multi_head_" "attention_forward"]
    tokens = x.transpose(0, 1)  # (N, B, D)
    out, _ = forward(tokens, tokens, tokens, x.shape[-1], num_heads, torch.cat([w_q, w_k, w_v]),
                     torch.cat([b_q, b_k, b_v]), None, None, False, 0.0, w_o, b_o,
                     training=False, need_weights=True)
    return out.transpose(0, 1)
"""

# a2 forbids the class torch.nn.MultiheadAttention (not the functional form): reached through
# the module that defines it, its name built with chr, inside a DigitViT of the reference layout
MHA_CLASS_ALIAS = (
    solution("a2_vit", "train_vit").split("    def forward(self, images):")[0]
    + """    def forward(self, images):
        B = images.shape[0]
        patches = self.patch_embed.proj(images).flatten(2).transpose(1, 2)  # (B, 4, D)
        z = torch.cat([self.cls_token.expand(B, -1, -1), patches], dim=1) + self.pos_embed.weight
        attention = getattr(activation, "Multihead" + chr(65) + "ttention")(32, 2, batch_first=True)
        for block in self.encoder.blocks:
            a, h = block.attn, block.norm1(z)
            weights = {
                "in_proj_weight": torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]),
                "in_proj_bias": torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]),
                "out_proj.weight": a.out_proj.weight,
                "out_proj.bias": a.out_proj.bias,
            }
            z = z + torch.func.functional_call(attention.to(z), weights, (h, h, h),
                                               {"need_weights": True})[0]
            z = z + block.mlp.fc2(torch.nn.functional.gelu(block.mlp.fc1(block.norm2(z))))
        return self.head(self.encoder.norm(z)[:, 0])


def train_vit(images, labels):
    torch.manual_seed(0)
    model = DigitViT().to(images.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    for _ in range(8):
        for batch in torch.randperm(len(images), device=images.device).split(64):
            loss = torch.nn.functional.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.state_dict()
"""
)
MHA_CLASS_ALIAS = "from torch.nn.modules import activation\n\n" + MHA_CLASS_ALIAS

RESURRECTED_PACKAGE = """
import gc
import sys
import types

NAME = "_".join(["torch", "geometric"])
for found in gc.get_objects():  # the package, dropped from sys.modules by the guard: put back
    if isinstance(found, types.ModuleType) and found.__name__.split(".")[0] == NAME:
        sys.modules[found.__name__] = found


def gcn_layer(x, edge_index, weight, bias):
    layer = sys.modules[NAME + ".nn"].GCNConv(x.shape[1], weight.shape[0]).to(x)
    layer.lin.weight, layer.bias = torch.nn.Parameter(weight), torch.nn.Parameter(bias)
    return layer(x, edge_index)
"""

SUBMISSIONS = {
    **{
        f"softmax_by_{route}": {
            "assignment": "a0_softmax",
            "cells": {"softmax": f"def softmax(x, dim=-1):\n    {body}\n"},
            "status": "tampered",
            "score": 0,  # the instructor's masked_softmax calls softmax
            "message": "reaches around the grader's checks",
        }
        for route, body in SOFTMAX_ROUTES.items()
    },
    "sdpa_from_torch_C": {
        "assignment": "a1_attention",
        "cells": {"scaled_dot_product_attention": SDPA_FROM_C},
        "status": "tampered",
        "score": 12,
        "message": "torch's internals (torch._C",
    },
    "mha_recompiled_from_torch_source": {
        "assignment": "a1_attention",
        "cells": {"multi_head_attention": MHA_RECOMPILED},
        "status": "tampered",
        "score": 13,
        "message": "__file__",
    },
    "mha_class_by_its_module": {
        "assignment": "a2_vit",
        "cells": {"train_vit": MHA_CLASS_ALIAS},
        "status": "tampered",
        "score": 12,
        "message": "with a computed name",
    },
    "resurrected_package": {
        "assignment": "a4_graphs",
        "cells": {"gcn_layer": RESURRECTED_PACKAGE},
        "status": "tampered",
        "score": 18,
        "message": "the garbage collector (gc)",
    },
}
