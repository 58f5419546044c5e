"""The service's container image: bases, build, registry, signature, SBOM and scan (issue 15).

``python -m cap_ops.image <command>``; each command is a module of this package.
"""
