/**
 * The identities of the cluster, by certificate common name. With etcd's client-cert-auth and
 * auth enabled, the CN of a client certificate *is* the etcd user name, so these names are the
 * RBAC users (src/lib/etcd/access.ts).
 *
 * - `root`: etcd's built-in superuser. Never issued for long: a bootstrap (which holds the CA)
 *   mints one for an RBAC run (settings.certs.rootClientDays) and forgets it.
 * - `xcluster-admin`: the operator; everything under the cluster prefix.
 * - `xcluster-serve-<node>`: one per node's serve daemon. Per node rather than shared, so one
 *   node's certificate can be cut off alone (delete its etcd user: refused at once, before the
 *   certificate expires and without a CRL) and etcd's audit names the node.
 * - `etcd-peer`: every member's peer certificate. The peer port admits only this CN, so a client
 *   certificate of the same CA (a serve daemon's, which has clientAuth too) cannot speak raft to
 *   the members; etcd admits one CN, so it is shared and members are told apart by their SANs
 *   (etcd checks the dialling address against the peer certificate's IP SANs).
 * - `etcd-server-<member>`: a member's client-port certificate.
 * Member CNs are never etcd users: a peer certificate has clientAuth and must not log in to the KV store.
 */
export const identity = {
  root: 'root',
  admin: 'xcluster-admin',
  serve: (node: string): string => `xcluster-serve-${node}`,
  etcdPeer: 'etcd-peer',
  etcdServer: (member: string): string => `etcd-server-${member}`,
} as const

/** The prefix of member-certificate CNs, which are never client identities or etcd users. */
export const MEMBER_CN_PREFIX = 'etcd-'
