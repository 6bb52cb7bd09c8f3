"""What the stateful fuzzes share: their hypothesis settings, read from the environment."""
from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, seed, settings


def fuzz_test_case(machine, prefix: str, examples: int, steps: int):
    """The pytest test case of a ``RuleBasedStateMachine``, run ``examples`` times for
    ``steps`` steps, or as ``{prefix}_EXAMPLES`` / ``{prefix}_STEPS`` say; derandomized
    unless ``{prefix}_SEED`` names a seed; ``{prefix}_NO_SHRINK=1`` reports a failure as
    found (shrinking a long run can take minutes)."""
    env = os.environ
    case = machine.TestCase
    case.settings = settings(
        max_examples=int(env.get(f"{prefix}_EXAMPLES", str(examples))),
        stateful_step_count=int(env.get(f"{prefix}_STEPS", str(steps))),
        deadline=None,
        derandomize=f"{prefix}_SEED" not in env,
        database=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate] + (
            [] if env.get(f"{prefix}_NO_SHRINK") else [Phase.shrink]),
    )
    if f"{prefix}_SEED" in env:
        case = seed(int(env[f"{prefix}_SEED"]))(case)
    return case
