"""The cluster and its cloud resources, selected by the stack config ``cluster.provider``.

Design: one program, not a cluster stack plus an app stack.
    The stack ``<env>`` of project ``cap-verifier-ops`` (``Pulumi.<env>.yaml``, ``infra/``)
    provisions the cluster's cloud resources and then, on a Kubernetes provider built from the
    cluster's own kubeconfig output, the Kubernetes part (direct: charts and objects; GitOps:
    Argo CD and its root Application). Why one program:

    - ``pulumi up`` on an empty account stands an environment up in one step; there is no
      second project, no StackReference to spell (organisation, project, stack) and no order
      between two stacks to get wrong;
    - the Kubernetes objects take role ARNs, bucket and repository from the resources' outputs
      (``pulumi.Output``), never from a copy, so they cannot drift from what exists; the same
      holds for the provider's kubeconfig;
    - one ``Pulumi.<env>.yaml`` holds every setting of the environment, as today;
    - the usual reason for two stacks (destroying the app must not destroy the cluster) is met
      by ``protect`` on the stateful resources (KMS key, cluster, backup bucket, registry):
      ``pulumi destroy`` refuses them until they are unprotected on purpose.

    The Argo CD path does not run Pulumi for the objects: ``python -m infra.render`` reads the
    cloud values from ``infra/outputs/<env>.yaml``, one file per environment, written from the
    stack's outputs by ``pulumi stack output --stack <env> --json | python -m infra.cloud.outputs
    <env>``. That file is the only place these values live in the repository (the placeholders
    of environments not yet provisioned included, marked as such in its first line); the config
    loader merges it, ``Pulumi.<env>.yaml`` may not set them, and a test lists the placeholders
    left. The image repository is one of them (``repository_url`` -> ``image.repository``);
    ``Pulumi.<env>.yaml`` keeps the image's version and digest, whose git history the rollback
    reads (``tools/cap_ops/stack_edit.py``).

Config keys (``cap-verifier-ops:cluster``):
    ``provider``: ``existing`` (default) or ``eks``.
    ``existing``: ``kube_context`` (the current context when unset); the program reads the
    server's version and refuses one outside ``k8s_version_oldest``..``k8s_version_newest``.
    ``eks`` (section, required with ``provider: eks``): ``region``; ``version`` (within the
    supported range); ``api_public_cidrs`` (non-empty); ``vpc_cidr`` (``10.0.0.0/16``);
    ``zones`` (three, default ``<region>a/b/c``); ``nat_per_zone`` (true: one NAT gateway per
    zone; false: one); ``nodes.instance_types`` (from the table in
    :mod:`infra.cloud.instances`, each >= 8 vCPU and >= 16 GiB), ``nodes.min_size`` (>= 3 in
    prod), ``nodes.desired_size``, ``nodes.max_size``, ``nodes.root_volume_gib`` (50);
    ``registry_keep_images`` (30); ``protect`` (true). The backup bucket's expiry is
    ``database.backup.retention_days`` (one home), its prefix ``database.backup.prefix``
    (``registry``); ``eks`` needs the ``database`` section.

Stack outputs (``eks``):
    ``kubeconfig`` (secret), ``cluster_name``, ``oidc_issuer``, ``backup_bucket``,
    ``backup_destination``, ``repository_url``, ``secrets_role_arn``, ``backup_role_arn``,
    ``playbooks_role_arn``, ``logs_bucket``, ``logs_role_arn`` (Loki's S3 bucket and IRSA role,
    for ``logging.bucket`` and ``logging.role_arn``), besides the Kubernetes part's (``mode``,
    ``namespace``, ``host``, ``url``), which are all there is with ``existing``.
"""
