"""Train a tiny RedditBias classifier in its own process, for the resume (SIGKILL) and torchrun tests.

    python tests/trainer/train_script.py --data DIR --store DIR --events FILE --config JSON
        [--resume] [--hang-after-checkpoint] [--fail-at-evaluation] [--result FILE] [--lm]

``--events`` and ``--result`` may contain ``{rank}``. ``--hang-after-checkpoint`` makes the event sink sleep
after the first ``checkpoint.saved``, so the test can kill the process at a known point mid-run.
``--fail-at-evaluation`` makes the sink raise at the first evaluation (only rank 0 emits events), so one rank
fails while the others carry on into their next collective. ``--lm`` trains on Tiny Shakespeare paragraphs
(``--rows`` of them) instead, for a causal-LM config.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
for _name, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false",
                      "HF_HUB_DISABLE_PROGRESS_BARS": "1"}.items():
    os.environ.setdefault(_name, _value)

from tests.trainer.setups import redditbias_splits, shakespeare_splits
from trainer import TrainConfig, train
from trainer.stores import PlaintextFolderStore, RecordingEventSink


class HangingSink(RecordingEventSink):
    """Records events to a file; optionally sleeps after the first checkpoint so a test can SIGKILL us."""

    def __init__(self, path: Path, hang: bool, fail: bool = False) -> None:
        super().__init__(path)
        self.hang = hang
        self.fail = fail

    def event(self, name: str, payload: dict[str, Any]) -> None:
        """Record, then hang if this is the checkpoint the test waits for (or fail at an evaluation)."""
        super().event(name, payload)
        if self.hang and name == "checkpoint.saved":
            time.sleep(600)
        if self.fail and name == "evaluated":
            raise RuntimeError("planted failure on this rank")


def main() -> None:
    """Parse arguments, train, write the result as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--config", required=True, help="TrainConfig.to_dict() as JSON")
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--hang-after-checkpoint", action="store_true")
    parser.add_argument("--fail-at-evaluation", action="store_true")
    parser.add_argument("--result")
    parser.add_argument("--lm", action="store_true")
    args = parser.parse_args()
    rank = os.environ.get("RANK", "0")
    config = TrainConfig.from_dict(json.loads(args.config))
    sink = HangingSink(Path(args.events.format(rank=rank)), args.hang_after_checkpoint, args.fail_at_evaluation)
    splits = shakespeare_splits(args.data, args.rows) if args.lm else redditbias_splits(args.data, rows=args.rows)
    result = train(config, splits, store=PlaintextFolderStore(args.store),
                   events=sink, tensorboard_dir=None, quiet=True, resume=args.resume)
    if args.result:
        Path(args.result.format(rank=rank)).write_text(json.dumps(result.to_dict()))


if __name__ == "__main__":
    main()
