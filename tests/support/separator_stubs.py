"""Stand-ins for a separation network, for tests whose subject is the plumbing around it (files, channels, level,
folders), not what a network learned."""

from __future__ import annotations

STUB_RATE = 16000


class StubModel:
    """Carries the attributes :class:`lassbench.separator.Separator` reads; subclasses say what ``__call__`` returns
    for ``(mixture, batch)``."""

    class config:  # noqa: N801 - mirrors SeparatorConfig's attribute path
        class backbone:  # noqa: N801
            sample_rate = STUB_RATE
            n_fft = 512


class IdentityModel(StubModel):
    """Returns the mixture: what goes in comes out, so the plumbing alone shows."""

    def __call__(self, mixture, batch):
        return mixture
