"""What a deploy will do, before it does it: the summary a person decides on (what goes out, CI,
where, from which release, builds, restarts, Sentry, verification) and the per-host plan steps."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from opsconsole.actions.base import PlanStep
from opsconsole.actions.deploy.host import HostDeploy, describe_release, read_states, restart_steps
from opsconsole.actions.deploy.pending import Fetched, what_goes_out
from opsconsole.actions.deploy.rolling import batches
from opsconsole.actions.deploy.shell import lock_command, unlock_command
from opsconsole.backends.ci import plan_request
from opsconsole.backends.clients import Backends
from opsconsole.backends.github import CiState
from opsconsole.backends.releases import DeployState
from opsconsole.errors import OpsError
from opsconsole.human import counted, duration
from opsconsole.profiles import DeployConfig, Environment, HostSpec


def ci_line(configured: bool, ci: CiState | OpsError | None, skip: bool) -> str:
    """The plan's CI line: green, red or pending with the checks, unreachable, or not configured."""
    if not configured:
        return "CI: not configured (no [ci] section): the deploy is not gated on checks"
    tail = " (--skip-ci: deploying anyway)" if skip else ""
    if ci is None:
        return "CI: unknown (the target commit could not be resolved)" + tail
    if isinstance(ci, OpsError):
        return f"CI: could not be read ({ci.message}); the deploy stops unless --skip-ci" + tail
    if ci.state == "success":
        return f"CI: {ci.summary()}"
    return f"CI: {ci.summary()}; the deploy stops unless --skip-ci" + tail


def sentry_environment(env: Environment) -> str:
    """The Sentry environment a deploy is recorded in: the profile's, else the environment's name."""
    return (env.sentry.environment if env.sentry else None) or env.name


def verify_terms(env: Environment, config: DeployConfig) -> str:
    verify = config.verify
    assert verify is not None
    terms = []
    if env.health:
        terms.append(f"{counted(len(env.health), 'health URLs')} keep passing")
    if env.sentry is not None:
        terms.append(f"at most {counted(verify.max_new_issues, 'new Sentry issues')} at level error or above")
    return ", ".join(terms) or "nothing to check (no health URLs, no Sentry)"


@dataclass
class Held:
    """What a plan in the console starts from instead of reading the hosts: each host's deploy state
    from the last refresh (`ages`: seconds since it was read), and what goes out as last read from
    the mirror (None: being read now; the plan says so and is filled in when it arrives)."""

    states: dict[str, DeployState | OpsError]
    ages: dict[str, float] = field(default_factory=dict)
    fetched: Fetched | None = None


def _pending_lines(env: Environment, ref: str, held: Held, skip_ci: bool) -> list[str]:
    fetched = held.fetched
    if fetched is None:
        lines = [
            "Pending commits: being read from the mirror (shown here once read; the deploy fetches "
            "and resolves the ref itself)"
        ]
        if env.ci is not None:
            lines.append("CI: read with the pending commits; the deploy checks it before it builds")
        else:
            lines.append(ci_line(False, None, skip_ci))
        return lines
    age = max(0.0, time.time() - fetched.at)
    return [
        *fetched.found.lines(),
        f"  (read from the mirror {duration(age)} ago; the deploy fetches again and says so if {ref} moved)",
        ci_line(env.ci is not None, fetched.ci, skip_ci),
    ]


def summary(
    backends: Backends,
    env: Environment,
    config: DeployConfig,
    hosts: list[HostSpec],
    ref: str,
    release: str,
    skip_ci: bool,
    held: Held | None = None,
) -> list[str]:
    """What a person decides on: what goes out, is CI green, where, from which release to which
    ref, builds, restarts. With `held` (the console) from what it holds, reading no host; without
    (the CLI) every host and the mirror are read now."""
    names = [h.raw for h in hosts]
    lines = [f"Deploy {ref} to {env.name} on {counted(len(names), 'hosts')}: {', '.join(names)}"]
    if held is None:  # the mirror and the hosts' states read side by side (one connection each)
        with ThreadPoolExecutor(max_workers=1) as pool:
            outgoing = pool.submit(what_goes_out, backends, env, ref)
            states = read_states(backends, hosts, config)
            found, ci = outgoing.result()
        lines += found.lines()
        lines.append(ci_line(env.ci is not None, ci, skip_ci))
        ages: dict[str, float] = {}
    else:
        lines += _pending_lines(env, ref, held, skip_ci)
        states, ages = held.states, held.ages
    for host, state in states.items():
        if isinstance(state, OpsError):
            lines.append(f"  {host}: current release unknown ({state.message})")
        else:
            seen = f" (as of {duration(ages[host])} ago)" if host in ages else ""
            lines.append(f"  {host}: now on {describe_release(state, state.current)}{seen}")
            if state.lock is not None:
                lines.append(f"  {host}: LOCKED, {state.lock.describe()}")
    lines.append(f"  → new release releases/{release} from {ref}")
    if config.build:
        lines.append("Build in the new release, on every host: " + "; ".join(config.build))
    if config.strategy == "rolling":
        order = batches(config, hosts)
        gate = (
            f", each must answer {config.host_health} within {config.host_health_timeout:g} s"
            if config.host_health
            else ""
        )
        lines.append(f"Then, once every host has built, switch in {len(order)} batch(es){gate}:")
        lines += [f"  batch {n}: {', '.join(h.raw for h in b)}" for n, b in enumerate(order, 1)]
        lines.append("  a failing batch stops the deploy and switches every switched host back")
    else:
        lines.append("Then, once every host has built, switch `current` on every host")
    if config.restart:
        lines.append("Restart: " + ", ".join(config.restart))
    if env.sentry is not None and env.sentry.releases:
        lines.append(
            "Then tell Sentry: the release with its commits, and a deploy to " + sentry_environment(env)
        )
    if config.verify is not None:
        lines.append(f"Then verify for {duration(config.verify.window)}: {verify_terms(env, config)}")
    lines.append(f"Keep the {config.keep_releases} newest good releases")
    return lines


def steps(
    env: Environment,
    config: DeployConfig,
    host_deploys: list[HostDeploy],
    ref: str,
    release: str,
    skip_ci: bool,
) -> list[PlanStep]:
    """Every host's commands in order; the CI check runs once, on the first host's commit."""
    planned: list[PlanStep] = []
    for part in host_deploys:
        host = part.name
        planned.append(PlanStep(host, "command", lock_command(config.path, "<lock: who, when, why>")))
        planned.append(PlanStep(host, "command", part.fetch_command()))
        planned.append(PlanStep(host, "command", part.resolve_command()))
        if env.ci is not None and part is host_deploys[0]:
            planned.append(
                PlanStep(
                    host,
                    "api",
                    f"{plan_request(env.ci)}: stop unless green"
                    + (" (skipped: --skip-ci)" if skip_ci else ""),
                )
            )
        planned.append(PlanStep(host, "command", part.export_command("<sha of " + ref + ">")))
        planned += [PlanStep(host, "command", part.shared_command(item)) for item in config.shared]
        planned += [PlanStep(host, "command", part.build_command(cmd)) for cmd in config.build]
        planned.append(PlanStep(host, "note", "after every host has built:"))
        planned.append(PlanStep(host, "command", part.switch_command(release)))
        planned += restart_steps(env, part.spec, config)
        if config.strategy == "rolling" and config.host_health:
            planned.append(
                PlanStep(
                    host,
                    "command",
                    part.health_command(config.host_health, config.host_health_timeout),
                )
            )
        planned.append(PlanStep(host, "note", f"prune releases/ to the newest {config.keep_releases}"))
        planned.append(
            PlanStep(
                host,
                "command",
                part.journal_command({"event": "deploy", "release": release, "...": "..."}),
            )
        )
        planned.append(PlanStep(host, "command", unlock_command(config.path, "<our lock>")))
    return planned
