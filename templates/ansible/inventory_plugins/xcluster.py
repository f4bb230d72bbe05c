# -*- coding: utf-8 -*-
# {{marker}}; a new export replaces it.
# The xcluster inventory plugin: the cluster's nodes as etcd holds them, through the xcluster CLI.
# Enable it in ansible.cfg: [defaults] inventory_plugins = <this directory>,
# [inventory] enable_plugins = xcluster, ...

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: xcluster
short_description: The nodes of an xcluster cluster, read from its etcd
description:
  - Runs C(xcluster inventory --list), which reads the cluster's spec and nodes from etcd at one
    revision, and adds its groups, hosts and host variables.
  - Groups by node type (C(core), C(storage), C(compute), C(frontend)) and by node state
    (C(state_ready), C(state_drained), ...).
  - Each host gets C(ansible_host) (the address xcluster itself reaches the node at), C(ansible_user)
    and C(ansible_ssh_private_key_file) from the spec, and C(xcluster_type), C(xcluster_mac),
    C(xcluster_ip), C(xcluster_leased_ip), C(xcluster_state), C(xcluster_reason) and
    C(xcluster_ready) (true only for a ready node, so a play can skip the others).
  - Every value is marked unsafe, so nothing that reached etcd is ever templated.
  - The inventory source is a YAML file whose name ends in C(.xcluster.yml) or C(.xcluster.yaml);
    C(xcluster inventory export DIR) writes one, with an C(ansible.cfg) that enables this plugin
    and a C(known_hosts) holding the host keys pinned in etcd.
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: The name of this plugin; it marks the file as a source for it.
    required: true
    choices: ['xcluster']
  executable:
    description: The xcluster CLI to run (a path, or a command on C(PATH)).
    type: str
    default: xcluster
  cluster:
    description: The cluster's name (C(--cluster)); default the CLI's (C(XCLUSTER_CLUSTER), else xcluster).
    type: str
  etcd:
    description:
      - Comma-separated etcd endpoints (C(--etcd)).
      - Default the CLI's (C(XCLUSTER_ETCD), else the cluster this admin host bootstrapped).
    type: str
  etcd_ca:
    description: CA certificate for etcd TLS (C(--etcd-ca)).
    type: path
  etcd_cert:
    description: Client certificate for etcd TLS (C(--etcd-cert)); needs I(etcd_key).
    type: path
  etcd_key:
    description: Client key for etcd TLS (C(--etcd-key)); needs I(etcd_cert).
    type: path
  ssh_key:
    description: The private key every host gets as C(ansible_ssh_private_key_file); default the spec's C(ssh.key).
    type: path
  lan_interface:
    description: This host's NIC on the cluster LAN; nodes without an IPv4 address are reached by IPv6 link-local on it.
    type: str
  timeout:
    description: Seconds the CLI may take.
    type: int
    default: 60
"""

EXAMPLES = r"""
# cluster.xcluster.yml, as `xcluster inventory export DIR` writes it
plugin: xcluster
executable: /usr/local/bin/xcluster
etcd: https://10.0.0.2:2379,https://10.0.0.3:2379,https://10.0.0.4:2379
etcd_ca: ~/.config/xcluster/xcluster/ca.pem
etcd_cert: ~/.config/xcluster/xcluster/operator.pem
etcd_key: ~/.config/xcluster/xcluster/operator-key.pem

# Only what the CLI's own defaults do not give (a cluster this host bootstrapped)
plugin: xcluster

# More groups from the host variables (constructed)
plugin: xcluster
keyed_groups:
  - key: xcluster_state
    prefix: xc
groups:
  rebootable: xcluster_ready and xcluster_type != 'core'
"""

import json
import subprocess

from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable
from ansible.utils.unsafe_proxy import wrap_var

# Option -> the CLI flag it becomes.
CLI_FLAGS = (
    ('cluster', '--cluster'),
    ('etcd', '--etcd'),
    ('etcd_ca', '--etcd-ca'),
    ('etcd_cert', '--etcd-cert'),
    ('etcd_key', '--etcd-key'),
    ('ssh_key', '--ssh-key'),
    ('lan_interface', '--lan-interface'),
)


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = 'xcluster'

    def verify_file(self, path):
        """A readable file named *.xcluster.yml or *.xcluster.yaml."""
        if not super(InventoryModule, self).verify_file(path):
            return False
        return path.endswith(('.xcluster.yml', '.xcluster.yaml'))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        self._populate(self._run_cli())

    def _command(self):
        argv = [self.get_option('executable'), 'inventory', '--list']
        for option, flag in CLI_FLAGS:
            value = self.get_option(option)
            if value:
                argv.extend([flag, to_native(value)])
        return argv

    def _run_cli(self):
        argv = self._command()
        timeout = self.get_option('timeout')
        try:
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, check=False)
        except FileNotFoundError:
            raise AnsibleParserError(
                'xcluster inventory: %s was not found; set the plugin option "executable" to the xcluster CLI' % argv[0]
            )
        except subprocess.TimeoutExpired:
            raise AnsibleParserError('xcluster inventory: %s did not answer within %d s' % (' '.join(argv[:3]), timeout))
        if done.returncode != 0:
            # The CLI says what failed and what to try next: pass it on as it is.
            raise AnsibleParserError(
                'xcluster inventory --list failed (exit %d): %s'
                % (done.returncode, to_text(done.stderr, errors='surrogate_or_strict').strip() or to_text(done.stdout).strip())
            )
        try:
            data = json.loads(to_text(done.stdout, errors='surrogate_or_strict'))
        except ValueError as e:
            raise AnsibleParserError('xcluster inventory --list printed no JSON inventory: %s' % to_native(e))
        if not isinstance(data, dict) or not isinstance(data.get('_meta', {}).get('hostvars'), dict):
            raise AnsibleParserError('xcluster inventory --list printed no _meta.hostvars: not an inventory')
        return data

    def _populate(self, data):
        hostvars = data['_meta']['hostvars']
        groups = dict((name, body) for name, body in data.items() if name != '_meta')
        for name in groups:
            self.inventory.add_group(name)
        for name, body in groups.items():
            for child in body.get('children', []):
                self.inventory.add_group(child)
                self.inventory.add_child(name, child)
            for host in body.get('hosts', []):
                self.inventory.add_host(host, group=name)
        strict = self.get_option('strict')
        for host, raw in hostvars.items():
            variables = wrap_var(raw)
            self.inventory.add_host(host)
            for key, value in variables.items():
                self.inventory.set_variable(host, key, value)
            self._set_composite_vars(self.get_option('compose'), variables, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option('groups'), variables, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option('keyed_groups'), variables, host, strict=strict)
