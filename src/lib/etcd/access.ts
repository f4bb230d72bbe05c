import {EtcdRoleNotFoundError, EtcdUserNotFoundError, Range, type IPermission} from 'etcd3'

import {identity, MEMBER_CN_PREFIX} from '../certs/identities.js'
import {preconditionError, usageError, XclusterError} from '../errors.js'
import type {KeySchema} from './keys.js'
import type {EtcdStore} from './store.js'

/**
 * etcd RBAC for one cluster. With client-cert-auth and auth enabled, etcd takes the user name
 * from the client certificate's CN, so each identity of src/lib/certs/identities.ts is an etcd
 * user (without a password: it can only log in with its certificate) holding one role:
 *
 * - admin role: read and write everything under the cluster prefix (the operator).
 * - serve role: read the cluster prefix (the DHCP allocator loads and watches all of it), write
 *   only what serve daemons write: election/ (leader, candidates, views, history, handover),
 *   dhcp/leases/, dhcp/by-mac/, dhcp/discovered/, dhcp/enlisted/. Not the spec, nodes, MACs, host-key pins,
 *   runs or certificates.
 * - root (etcd's own, required to enable auth): user and role management, membership, snapshots.
 *   Nobody holds it day to day; whoever has the CA mints a short-lived `root` certificate.
 */
export interface AccessPlan {
  /** Operator identities (client-certificate CNs) given the admin role. */
  admins: string[]
  /** Serve daemons' identities, one per node (identity.serve(node)). */
  serve: string[]
}

export type PermissionType = 'Read' | 'Write' | 'Readwrite'

/** A permission on a key range: [key, rangeEnd), or the key alone when rangeEnd is empty. */
export interface RangePermission {
  type: PermissionType
  key: string
  rangeEnd: string
  /** What it is, for reports. */
  label: string
}

export type AccessChange =
  | {action: 'add-role'; role: string}
  | {action: 'grant-permission'; role: string; permission: string}
  | {action: 'revoke-permission'; role: string; permission: string}
  | {action: 'add-user'; user: string}
  | {action: 'grant-role'; user: string; role: string}
  | {action: 'revoke-role'; user: string; role: string}
  | {action: 'enable-auth'}

export interface AccessReport {
  cluster: string
  roles: {admin: string; serve: string}
  /** What was changed (or, with dryRun, would be); empty when etcd already matched the plan. */
  changes: AccessChange[]
  dryRun: boolean
  /** Whether auth was enabled before this run. */
  authWasEnabled: boolean
}

/** The role names for a cluster: namespaced so one etcd could hold several clusters' roles. */
export function accessRoles(cluster: string): {admin: string; serve: string} {
  return {admin: `xcluster:${cluster}:admin`, serve: `xcluster:${cluster}:serve`}
}

/** The permissions each role must have, exactly. */
export function rolePermissions(keys: KeySchema): {admin: RangePermission[]; serve: RangePermission[]} {
  const prefix = (type: PermissionType, start: string, label: string): RangePermission => {
    const range = Range.prefix(start)
    return {type, key: range.start.toString(), rangeEnd: range.end.toString(), label}
  }
  return {
    admin: [prefix('Readwrite', keys.prefix, `${keys.prefix}*`)],
    serve: [
      prefix('Read', keys.prefix, `${keys.prefix}*`),
      prefix('Readwrite', keys.electionsPrefix(), `${keys.electionsPrefix()}*`),
      prefix('Readwrite', keys.leasesPrefix(), `${keys.leasesPrefix()}*`),
      prefix('Readwrite', keys.leasesByMacPrefix(), `${keys.leasesByMacPrefix()}*`),
      prefix('Readwrite', keys.discoveredPrefix(), `${keys.discoveredPrefix()}*`),
      prefix('Readwrite', keys.enlistedPrefix(), `${keys.enlistedPrefix()}*`),
    ],
  }
}

export function describeChange(change: AccessChange): string {
  switch (change.action) {
    case 'add-role':
      return `add role ${change.role}`
    case 'grant-permission':
      return `role ${change.role}: grant ${change.permission}`
    case 'revoke-permission':
      return `role ${change.role}: revoke ${change.permission}`
    case 'add-user':
      return `add user ${change.user} (certificate login only)`
    case 'grant-role':
      return `user ${change.user}: grant role ${change.role}`
    case 'revoke-role':
      return `user ${change.user}: revoke role ${change.role}`
    case 'enable-auth':
      return 'enable etcd authentication'
  }
}

/**
 * Brings etcd's users, roles and auth switch to the plan, changing only what differs: a re-run
 * reports no changes. Roles it manages converge exactly (extra permissions revoked; users not in
 * the plan lose the role); other roles and users are left alone. Auth is enabled last, so a run
 * cut short leaves etcd open as it was rather than locked with half the users.
 *
 * Needs etcd's root role once auth is on: connect with a `root` client certificate.
 */
export async function configureAccess(store: EtcdStore, plan: AccessPlan, options: {dryRun?: boolean} = {}): Promise<AccessReport> {
  checkPlan(plan)
  const roles = accessRoles(store.keys.cluster)
  const wanted = rolePermissions(store.keys)
  const authWasEnabled = await authEnabled(store)
  const changes: AccessChange[] = []
  const apply = async (change: AccessChange, fn: () => Promise<unknown>) => {
    changes.push(change)
    if (!options.dryRun) await store.call(describeChange(change), fn)
  }
  const auth = store.client.auth

  try {
    const existingRoles = new Set((await store.call('list etcd roles', () => auth.roleList())).roles)
    for (const [kind, role] of [
      ['admin', roles.admin],
      ['serve', roles.serve],
    ] as const) {
      if (!existingRoles.has(role)) await apply({action: 'add-role', role}, () => auth.roleAdd({name: role}))
      const have = existingRoles.has(role) ? await rolePerms(store, role) : []
      for (const p of wanted[kind]) {
        const same = have.find((h) => h.key === p.key && h.rangeEnd === p.rangeEnd)
        if (same?.type === p.type) continue
        await apply({action: 'grant-permission', role, permission: `${p.type.toLowerCase()} ${p.label}`}, () =>
          auth.roleGrantPermission({name: role, perm: {permType: p.type, key: Buffer.from(p.key), range_end: Buffer.from(p.rangeEnd)}}),
        )
      }
      for (const h of have) {
        if (wanted[kind].some((p) => p.key === h.key && p.rangeEnd === h.rangeEnd)) continue
        await apply({action: 'revoke-permission', role, permission: `${h.type.toLowerCase()} ${h.key}${h.rangeEnd ? ` .. ${h.rangeEnd}` : ''}`}, () =>
          auth.roleRevokePermission({role, key: Buffer.from(h.key), range_end: Buffer.from(h.rangeEnd)}),
        )
      }
    }

    const users = new Set((await store.call('list etcd users', () => auth.userList())).users)
    const members: [string, string][] = [[identity.root, 'root'], ...plan.admins.map((u): [string, string] => [u, roles.admin]), ...plan.serve.map((u): [string, string] => [u, roles.serve])]
    for (const [user, role] of members) {
      if (!users.has(user)) await apply({action: 'add-user', user}, () => auth.userAdd({name: user, options: {no_password: true}}))
      const held = users.has(user) ? await userRoles(store, user) : []
      if (!held.includes(role)) await apply({action: 'grant-role', user, role}, () => auth.userGrantRole({user, role}))
    }
    for (const user of users) {
      if (members.some(([u]) => u === user)) continue
      for (const role of await userRoles(store, user)) {
        if (role === roles.admin || role === roles.serve) await apply({action: 'revoke-role', user, role}, () => auth.userRevokeRole({name: user, role}))
      }
    }

    if (!authWasEnabled) await apply({action: 'enable-auth'}, () => auth.authEnable())
  } catch (err) {
    if (err instanceof XclusterError && err.code === 'ETCD_PERMISSION_DENIED') {
      throw preconditionError(
        'ETCD_ACCESS_NEEDS_ROOT',
        "Changing etcd users and roles needs etcd's root role, and this connection's certificate does not have it.",
        `Connect with a client certificate whose CN is "${identity.root}", issued by the cluster CA (it is minted for the run, never stored).`,
        {identity: store.identity ?? null},
      )
    }
    throw err
  }
  return {cluster: store.keys.cluster, roles, changes, dryRun: options.dryRun ?? false, authWasEnabled}
}

/**
 * Whether etcd has authentication on. etcd 3.5+ answers AuthStatus; 3.4 (Debian bookworm's) has
 * no such call, so then ask it to log in a user that cannot exist: with auth off it answers
 * "authentication is not enabled" (etcd logs the failed login as a warning).
 */
export async function authEnabled(store: EtcdStore): Promise<boolean> {
  try {
    return Boolean((await store.call('read etcd auth status', (c) => c.auth.authStatus())).enabled)
  } catch (err) {
    if (!/unimplemented|unknown method|unknown service/i.test(String((err as Error)?.message ?? err))) throw err
  }
  try {
    await store.call('probe etcd auth', (c) => c.auth.authenticate({name: 'xcluster-auth-probe', password: 'no such user'}))
    return true
  } catch (err) {
    const message = String((err as Error)?.message ?? err)
    if (/authentication is not enabled/.test(message)) return false
    if (/authentication failed|invalid user ID or password|user name not found/.test(message)) return true
    throw err
  }
}

async function rolePerms(store: EtcdStore, role: string): Promise<Omit<RangePermission, 'label'>[]> {
  try {
    const res = await store.call(`read role ${role}`, (c) => c.auth.roleGet({role}))
    return (res.perm ?? []).map((p: IPermission) => ({type: permissionType(p.permType), key: (p.key ?? Buffer.alloc(0)).toString(), rangeEnd: (p.range_end ?? Buffer.alloc(0)).toString()}))
  } catch (err) {
    if (err instanceof EtcdRoleNotFoundError) return []
    throw err
  }
}

async function userRoles(store: EtcdStore, user: string): Promise<string[]> {
  try {
    return (await store.call(`read user ${user}`, (c) => c.auth.userGet({name: user}))).roles ?? []
  } catch (err) {
    if (err instanceof EtcdUserNotFoundError) return []
    throw err
  }
}

/** etcd3 hands the enum back as its name or its number, depending on the call. */
function permissionType(value: unknown): PermissionType {
  const names: PermissionType[] = ['Read', 'Write', 'Readwrite']
  if (typeof value === 'number') return names[value] ?? 'Read'
  const name = names.find((n) => n.toLowerCase() === String(value).toLowerCase())
  if (!name) throw new Error(`unknown etcd permission type ${String(value)}`)
  return name
}

function checkPlan(plan: AccessPlan): void {
  const all = [...plan.admins, ...plan.serve]
  for (const user of all) {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(user)) throw usageError(`"${user}" is not a valid identity name.`, 'Use lower-case letters, digits, ".", "_" and "-" (a certificate CN).')
    if (user === identity.root) throw usageError('"root" is etcd\'s superuser, not an xcluster identity.', `Use ${identity.admin} for the operator.`)
    if (user.startsWith(MEMBER_CN_PREFIX)) throw usageError(`"${user}" is an etcd member certificate name; members never log in as users.`, 'Give the identity of a client certificate.')
  }
  const twice = all.filter((u, i) => all.indexOf(u) !== i)
  if (twice.length > 0) throw usageError(`Identities listed twice: ${[...new Set(twice)].join(', ')}.`, 'Give each identity one role: admin or serve.')
  if (plan.admins.length === 0) throw usageError('The access plan has no admin identity: nobody could manage the cluster.', `Include ${identity.admin}.`)
}
