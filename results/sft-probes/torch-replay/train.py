"""Replays mqar.mjs K=2 in an independent float64 PyTorch decoder (test/fixtures/make_model_fixtures.py's
forward) from the same initial weights (runs/mqar-k2/model.safetensors) on the same batches
(dump.mjs), with the same AdamW, schedule and clipping: is the slow learning ours or the recipe's?
Run from the repository root: /usr/bin/python3 results/sft-probes/torch-replay/train.py 6e-3"""
import json, struct, sys, math, numpy as np, torch
sys.path.insert(0, "test/fixtures")
from make_model_fixtures import forward
torch.set_num_threads(1)
d = "runs/mqar-k2"
raw = json.load(open(d + "/config.json"))
c = {"numHeads": raw["num_attention_heads"], "numKvHeads": raw["num_key_value_heads"], "headDim": raw["head_dim"], "rmsNormEps": raw["rms_norm_eps"],
     "numLayers": raw["num_hidden_layers"], "attentionBias": raw["attention_bias"], "qkNorm": raw["model_type"] == "qwen3", "ropeTheta": raw["rope_theta"],
     "tieWordEmbeddings": raw["tie_word_embeddings"]}
buf = open(d + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", buf[:8])[0]; hdr = json.loads(buf[8:8 + n]); base = 8 + n
p = {}
for k, v in hdr.items():
    if k == "__metadata__": continue
    a, b = v["data_offsets"]
    p[k] = torch.from_numpy(np.frombuffer(buf[base + a:base + b], dtype=np.float32).copy().reshape(v["shape"])).double().requires_grad_(True)
data = json.load(open("/tmp/tq/batches.json")); B = data["B"]
lr0, total, warm = float(sys.argv[1]), 2000, 50
opt = torch.optim.AdamW(list(p.values()), lr=lr0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
def lr_at(step):
    if step <= warm: return lr0 * step / warm
    prog = min(1, (step - warm) / (total - warm)); return lr0 * 0.1 + (lr0 - lr0 * 0.1) * 0.5 * (1 + math.cos(math.pi * prog))
def tens(bt):
    T = bt["T"]; return torch.tensor(bt["ids"]).reshape(-1, T), torch.tensor(bt["targets"]), torch.tensor(bt["kind"])
def evaluate():
    ids, tg, kind = tens(data["eval"])
    with torch.no_grad():
        _, logits = forward(c, p, ids)
    am = logits.reshape(-1, logits.shape[-1]).argmax(-1)
    names = {1: "check fact", 2: "check none", 3: "value"}
    return ", ".join(f"{names[k]} {((am == tg) & (kind == k)).sum().item() / (kind == k).sum().item():.2f}" for k in (1, 2, 3))
la = 0
for s, bt in enumerate(data["steps"]):
    ids, tg, kind = tens(bt)
    _, logits = forward(c, p, ids)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tg, ignore_index=-1)
    opt.zero_grad(); loss.backward()
    torch.nn.utils.clip_grad_norm_(list(p.values()), 1.0)
    for g in opt.param_groups: g["lr"] = lr_at(s + 1)
    opt.step()
    la = loss.item() if s == 0 else 0.95 * la + 0.05 * loss.item()
    if (s + 1) % 100 == 0: print(f"step {s+1} loss {la:.3f} | {evaluate()}", flush=True)
