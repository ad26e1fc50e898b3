"""Run every benchmark in one go: ``python -m benchmarks [--quick]``."""
import sys

from . import crunch_scaling, jbba_quality, jbba_scaling


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    for module in (crunch_scaling, jbba_scaling, jbba_quality):
        print(f"\n=== {module.__name__} ===")
        module.main(argv)


if __name__ == "__main__":
    main()
