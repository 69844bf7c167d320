"""``python -m kappalake`` and the primary resource that spark-submit.sh submits."""

from kappalake.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
