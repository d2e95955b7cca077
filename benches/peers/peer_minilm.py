#!/usr/bin/env python3
"""PyTorch + Hugging Face transformers twin of `mixup bench --recipe models/minilm-trec-none.toml`.

Fine-tuning steps of a BERT-family checkpoint with a classification head on the final [CLS]
state (no pooler, as the recipe's `pooler = false`): dropout, a fresh linear layer, cross-entropy,
AdamW with weight decay off biases and LayerNorm, global gradient-norm clipping after backward.
Every row of a batch is `--seq` tokens of random ids (no padding), like `mixup bench`.

Usage: peer_minilm.py --checkpoint DIR [--batch 32] [--seq 24] [--steps 20] [--warmup 3]
                      [--classes 6] [--lr 5e-5] [--weight-decay 0.01] [--clip 1.0]
                      [--dropout 0.1] [--threads 2] [--device cpu|cuda] [--seed 0]
Prints one JSON line: median ms per step and samples/s.
"""
import argparse, json, statistics, time

import torch
import torch.nn as nn
import transformers
from transformers import AutoModel


class Classifier(nn.Module):
    def __init__(self, checkpoint, classes, dropout):
        super().__init__()
        self.encoder = AutoModel.from_pretrained(checkpoint, add_pooling_layer=False)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(self.encoder.config.hidden_size, classes)

    def forward(self, ids, mask):
        h = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return self.out(self.drop(h[:, 0]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=24)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--classes", type=int, default=6)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    model = Classifier(a.checkpoint, a.classes, a.dropout).to(dev).train()
    vocab = model.encoder.config.vocab_size
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=a.lr, eps=1e-8,
    )
    times = []
    for i in range(a.warmup + a.steps):
        ids = torch.randint(1000, vocab, (a.batch, a.seq), device=dev)
        mask = torch.ones_like(ids)
        y = torch.randint(0, a.classes, (a.batch,), device=dev)
        start = time.perf_counter()
        loss = nn.functional.cross_entropy(model(ids, mask), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        loss.item()  # waits for the step, like reading the loss back in `mixup bench`
        if i >= a.warmup:
            times.append((time.perf_counter() - start) * 1e3)
    med = statistics.median(times)
    print(json.dumps({
        "framework": f"pytorch {torch.__version__}, transformers {transformers.__version__}",
        "device": a.device, "threads": a.threads, "batch": a.batch, "seq": a.seq, "steps": a.steps,
        "parameters": sum(p.numel() for p in model.parameters()),
        "ms_per_step_median": med, "ms_per_step_min": min(times), "ms_per_step_max": max(times),
        "samples_per_s": a.batch * 1e3 / med,
    }))


if __name__ == "__main__":
    main()
