"""The deploy transaction: plan (plan.py), the saga and its commit point (saga.py), the rolling switch
(rolling.py), the failure paths (recover.py), one host's part (host.py), the locks, and the
verification that follows a deploy (verify.py)."""

from opsconsole.actions.deploy.saga import DeployAction

__all__ = ["DeployAction"]
