"""The runner: the party that trains is not the party that is judged.

An engineer submits a run config (``govtrain run --submit``): it is checked as ``govtrain run`` checks it, stored
in the workspace (``requests/<request id>.yaml``) and its digest signed into the log as ``run.requested``. A
runner, a service identity whose key no engineer holds, on a machine or account no engineer controls, takes the
oldest queued request (``govtrain runner --once``, or ``govtrain runner serve``), re-reads the stored config,
refuses it (exit 5) unless its digest is the logged one, and executes it through the same orchestration as
``govtrain run``; every ``run.*`` and ``report.written`` entry and the provenance are then signed by the runner's
key, and ``run.started`` records the request, who asked, and the runner's environment.

Like SLSA Build L3's hosted builder, the runner runs no user-defined step: a run config names data, a model
folder (weights as safetensors, never pickles or code) and numbers, never code to execute; the one field that
could import a module (``model.path: package:NAME``) is held to the model packages govtrain itself declares
(:mod:`governance.runner.isolation`). The runner's key stays in the runner's process and the torchrun processes
it starts, all of them govtrain's own code.

What the runner does not protect against: an admin who grants the runner role to a key an engineer holds (the
grant is logged and visible in ``identity list``, but nothing refuses it), and a runner machine or account the
engineer controls (then the engineer holds the runner key and can patch the runner's process like their own).
"""
