"""orchestrator-aws: EC2 resources (key pairs, security groups, instances, elastic IPs,
VPCs, subnets) for orchestrator blueprints.

Each resource family is its own plugin (entry point group ``orchestrator.plugins``):
``aws`` (shared data types), ``aws_keypair``, ``aws_security_group``,
``aws_ec2_instance``, ``aws_elastic_ip`` and ``aws_network``. The remaining modules are
shared helpers, not plugins.
"""

__version__ = "0.1.0"
