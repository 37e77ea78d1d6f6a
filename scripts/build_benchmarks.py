"""Build the BioTalk benchmarks: ``python scripts/build_benchmarks.py --config configs/data/mini.yaml [key=value ...]``."""

from biotalk.cli import run
from biotalk.data.build import BuildConfig, build_benchmarks


def main(cfg: BuildConfig) -> None:
    print(f"wrote {build_benchmarks(cfg)}")


if __name__ == "__main__":
    run(main, BuildConfig, __doc__)
