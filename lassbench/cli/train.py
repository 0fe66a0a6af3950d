"""``lassbench train``."""

from __future__ import annotations

import os

import click


@click.command("train")
@click.argument("model")
@click.option("--data", required=True, multiple=True, type=click.Path(),
              help="Built benchmark folder (from build-dataset). Repeat it to train on several together: each "
                   "example comes from one of them (equal odds), mixed by its own protocol; all at one sample rate.")
@click.option("--out", required=True, type=click.Path(),
              help="Run folder: log.csv, last.pt, and model.pt (a published system: model.ckpt, its official layout).")
@click.option("--size", default="tiny", show_default=True, type=click.Choice(["tiny", "base"]))
@click.option("--text-encoder", default=None,
              help="Registry name (minilm, bert-mini), HF name or local folder; for a published system its tokenizer "
                   "folder, as for run.")
@click.option("--finetune-text", is_flag=True, help="Train the text encoder too (frozen by default).")
@click.option("--mixing", default=None, type=click.Choice(["remix", "fixed", "audiosep"]),
              help="remix (default): fresh interferers and SNRs every step from the training sources, by the "
                   "benchmark's protocol; fixed: built mixtures; audiosep (default for audiosep, dcase2024-baseline, "
                   "audiosep-dp): AudioSep's SegmentMixer within each micro-batch of training clips.")
@click.option("--crop", default="uniform", show_default=True, type=click.Choice(["uniform", "active"]),
              help="Where each example's crop starts: uniform over the item, or active: around a random moment "
                   "where the target sounds (for clips that are mostly silence).")
@click.option("--loss", default="l1", show_default=True, type=click.Choice(["l1", "snr"]),
              help="l1: waveform L1 (LASS-Net, AudioSep); snr: thresholded negative SNR in dB per example (MixIT), "
                   "which weighs quiet and loud targets alike.")
@click.option("--steps", default=2000, show_default=True)
@click.option("--batch-size", default=8, show_default=True,
              help="Examples per process and micro-batch; the global batch is this x processes x --accumulate.")
@click.option("--accumulate", default=1, show_default=True,
              help="Micro-batches per optimiser step (gradient accumulation): the examples and, up to rounding, the "
                   "gradients of N x --batch-size in the activation memory of --batch-size.")
@click.option("--precision", default="32", show_default=True, type=click.Choice(["32", "bf16", "16-mixed"]),
              help="32: float32; bf16: bfloat16 autocast (CPU, Ampere+ GPUs); 16-mixed: float16 autocast with a "
                   "dynamic loss scaler (GPUs without bfloat16). Weights and optimiser state stay float32.")
@click.option("--clip-grad", default=0.0, show_default=True,
              help="Clip the global gradient norm to this before each step (0: no clipping). log.csv records the "
                   "norm before clipping.")
@click.option("--segment-seconds", default=2.0, show_default=True, help="Random crop length of each example.")
@click.option("--lr", default=None, type=float,
              help="Peak learning rate (warm-up over 5% of the steps, then cosine to 10%); default 2e-3, or 1e-4 when "
                   "fine-tuning a published system.")
@click.option("--val-every", default=250, show_default=True)
@click.option("--checkpoint-every", default=250, show_default=True,
              help="Write OUT/last.pt (weights, optimiser and loss-scaler state) every N steps; --resume continues "
                   "from it exactly.")
@click.option("--tensorboard", is_flag=True,
              help="Also write TensorBoard event files to OUT/tensorboard (needs `pip install tensorboard`).")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 ...")
@click.option("--threads", default=0, help="torch CPU threads (0: default).")
@click.option("--workers", default=0, show_default=True,
              help="DataLoader processes rendering examples ahead of the model (0: in the training process). The "
                   "batches are the same for any value.")
@click.option("--init", "init", default=None, type=click.Path(),
              help="Start from this trained checkpoint's weights (fine-tuning; e.g. a shipped one) instead of random "
                   "ones. A class-conditioned model keeps the embeddings of the classes both know. Required for a "
                   "published system: its released checkpoint (e.g. audiosep_base_4M_steps.ckpt).")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt (same data and seed give the same run).")
def command(model: str, data: tuple[str, ...], out: str, size: str, text_encoder: str | None, finetune_text: bool,
            mixing: str | None, crop: str, loss: str, steps: int, batch_size: int, accumulate: int, precision: str,
            clip_grad: float, segment_seconds: float, lr: float | None, val_every: int, checkpoint_every: int,
            tensorboard: bool, seed: int, device: str, threads: int, workers: int, init: str | None,
            resume: bool) -> None:
    """Train MODEL (lassnet, tag-queried, class-conditioned) on a built benchmark, or fine-tune a published one
    (audiosep, dcase2024-baseline, audiosep-dp: --init RELEASED.ckpt --text-encoder TOKENIZER_DIR) by its official
    recipe: the separator trains, CLAP stays frozen, L1 loss, AudioSep's mixer.

    Several processes (GPUs or nodes) train data-parallel under torchrun, e.g.
    `torchrun --nproc_per_node 4 -m lassbench train lassnet --data D --out R --device cuda`.
    """
    import logging

    from lassbench.models.registry import get_model_entry
    from lassbench.train import TrainConfig, train

    published = get_model_entry(model).published is not None
    mixing = mixing or ("audiosep" if published else "remix")
    lr = lr if lr is not None else (1e-4 if published else 2e-3)

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = TrainConfig(model=model, data=data[0] if len(data) == 1 else list(data), init=init, out=out, size=size,
                         text_encoder=text_encoder,
                         finetune_text=finetune_text, mixing=mixing, crop=crop, loss=loss, steps=steps,
                         batch_size=batch_size, accumulate=accumulate, precision=precision, clip_grad=clip_grad,
                         segment_seconds=segment_seconds, lr=lr, val_every=val_every,
                         checkpoint_every=checkpoint_every, tensorboard=tensorboard, seed=seed, device=device,
                         threads=threads, workers=workers)
    path = train(config, resume=resume)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line, not one per process
        click.echo(f"checkpoint: {path}")
