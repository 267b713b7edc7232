"""One process of a `bench reproduce --launcher slurm` array task for the toy paper, which lives in tests/ and
so must be registered in the task's own process before bench.launch runs it (used by test_slurm.py)."""
import sys

from bench import launch, papers
from tests.core.conftest import TOY_CARD

papers.registries()["papers"].register("toy", "tests.core.toy_recipe", package="toy", card=str(TOY_CARD))
sys.exit(launch.main())
