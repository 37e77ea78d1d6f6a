"""Build the BioTalk benchmarks: ``python scripts/build_benchmarks.py --config configs/data/mini.yaml [key=value ...]``."""

import sys

from biotalk.config import parse_args
from biotalk.data.build import BuildConfig, build_benchmarks
from biotalk.data.errors import InputError


def main() -> None:
    cfg = parse_args(BuildConfig, description=__doc__)
    try:
        out = build_benchmarks(cfg)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
