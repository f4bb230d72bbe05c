import {settings} from '../settings.js'
import {shellQuote as q} from '../ssh/index.js'
import type {ReleaseBundle} from './bundle.js'
import type {InstallLayout} from './layout.js'

/**
 * The shell commands the release phases run on a node (as root, POSIX sh and Debian's base
 * tools: coreutils, gzip, tar, findutils, mawk). Each install stages in a fresh directory beside
 * its destination, verifies, then renames into place; on any failure the stage and the
 * directories it created are removed and it exits with one of these codes.
 */
export const RemoteExit = {
  /** The upload is not what was sent: gzip failed or the sha256 differs. */
  checksum: 65,
  /** The uploaded Node.js binary does not run on this host (architecture, libc) or is another version. */
  runtimeUnusable: 66,
  /** tar could not unpack a verified archive (disk full, permissions). */
  unpack: 67,
} as const

/** Names a release or runtime directory of ours has; anything else under base is left alone. */
export const RELEASE_DIR = /^[0-9A-Za-z.+-]+-[0-9a-f]{12}$/
export const RUNTIME_DIR = /^node-v[0-9A-Za-z.+-]+-[0-9a-f]{12}$/

/** Shell lines: `top` is the highest directory above `dir` that does not exist yet, `undo_dirs` removes what was created (if empty). */
function createdDirs(dir: string): string[] {
  return [
    `created=${q(dir)}; top=; d=$created; while [ ! -e "$d" ]; do top=$d; d=$(dirname "$d"); done`,
    'undo_dirs() { [ -n "$top" ] || return 0; d=$created; while rmdir "$d" 2>/dev/null; do [ "$d" = "$top" ] && return 0; d=$(dirname "$d"); done; return 0; }',
    'fail() { code=$1; shift; rm -rf "$stage"; undo_dirs; printf \'%s\\n\' "$*" >&2; exit "$code"; }',
  ]
}

/** Read-only: what the node is and has (one `key value` per line, see parseProbe). */
export function probeCommand(layout: InstallLayout, bundle: ReleaseBundle): string {
  const release = layout.release(bundle.id)
  const runtime = layout.runtime(bundle.runtime.dir)
  return [
    'set -u',
    `base=${q(layout.base)}; rel=${q(release)}; rt=${q(runtime)}`,
    'echo "kernel $(uname -s)"',
    'echo "machine $(uname -m)"',
    'echo "libc $(getconf GNU_LIBC_VERSION 2>/dev/null || echo unknown)"',
    // Free space where the install goes: the nearest directory that exists.
    'd=$base; while [ ! -e "$d" ]; do d=$(dirname "$d"); done',
    'echo "free $(df -Pk "$d" | awk \'NR==2 {print $4}\')"',
    'if [ -f "$rt/bin/node" ]; then echo "runtime $(sha256sum < "$rt/bin/node" | cut -c1-64)"; elif [ -e "$rt" ] || [ -L "$rt" ]; then echo "runtime -"; fi',
    'if [ -e "$rel" ] || [ -L "$rel" ]; then',
    `  marker=$(head -c 100 "$rel/${settings.release.markerFile}" 2>/dev/null | tr -d '\\n'); echo "marker $marker"`,
    `  sums=$(sha256sum < "$rel/${settings.release.sumsFile}" 2>/dev/null | cut -c1-64); echo "sums $sums"`,
    '  echo "link $(readlink "$rel/runtime" 2>/dev/null)"',
    // Every file against SHA256SUMS, only when the marker and SHA256SUMS are the expected ones.
    `  if [ "$marker" = ${q(bundle.sha256)} ] && [ "$sums" = ${q(bundle.sumsSha256)} ]; then`,
    `    if (cd "$rel" && sha256sum --quiet --strict -c ${settings.release.sumsFile} >/dev/null 2>&1); then echo "tree ok"; else echo "tree bad"; fi`,
    '  fi',
    'fi',
    'for link in current libexec; do',
    '  if [ -L "$base/$link" ]; then echo "$link $(readlink "$base/$link")"; elif [ -e "$base/$link" ]; then echo "$link-not-a-link"; fi',
    'done',
    'true',
  ].join('\n')
}

export interface NodeProbe {
  kernel: string
  machine: string
  libc: string
  freeBytes: number
  /** sha256 of the runtime's bin/node, '-' if its directory is there without it, absent if not there. */
  runtimeSha?: string
  release?: {marker: string; sums: string; link: string; tree?: 'ok' | 'bad'}
  current?: string
  libexec?: string
  /** `current` or `libexec` exists but is not a symlink. */
  conflicts: string[]
}

export function parseProbe(stdout: string): NodeProbe {
  const lines = new Map<string, string>()
  const conflicts: string[] = []
  for (const line of stdout.split('\n')) {
    if (!line) continue
    const space = line.indexOf(' ')
    const key = space < 0 ? line : line.slice(0, space)
    if (key.endsWith('-not-a-link')) conflicts.push(key.slice(0, -'-not-a-link'.length))
    else lines.set(key, space < 0 ? '' : line.slice(space + 1))
  }
  const release = lines.has('marker')
    ? {marker: lines.get('marker')!, sums: lines.get('sums') ?? '', link: lines.get('link') ?? '', ...(lines.has('tree') ? {tree: lines.get('tree') as 'ok' | 'bad'} : {})}
    : undefined
  return {
    kernel: lines.get('kernel') ?? '',
    machine: lines.get('machine') ?? '',
    libc: lines.get('libc') ?? 'unknown',
    freeBytes: Number(lines.get('free') ?? 0) * 1024,
    ...(lines.has('runtime') ? {runtimeSha: lines.get('runtime')} : {}),
    ...(release ? {release} : {}),
    ...(lines.has('current') ? {current: lines.get('current')} : {}),
    ...(lines.has('libexec') ? {libexec: lines.get('libexec')} : {}),
    conflicts,
  }
}

/** stdin: the gzipped binary. Verifies its sha256 and that it runs and reports its version, then renames it into place. */
export function installRuntimeCommand(layout: InstallLayout, bundle: ReleaseBundle): string {
  const rt = bundle.runtime
  return [
    'set -eu',
    ...createdDirs(layout.runtimes),
    `final=${q(layout.runtime(rt.dir))}; sum=${q(rt.sha256)}; version=${q(rt.version)}`,
    'stage=',
    `mkdir -p "$created" || fail ${RemoteExit.unpack} "cannot create $created"`,
    `stage=$(mktemp -d "$created/.incoming-XXXXXX") || fail ${RemoteExit.unpack} "cannot create a staging directory in $created"`,
    'mkdir "$stage/bin"',
    `gzip -dc > "$stage/bin/node" || fail ${RemoteExit.checksum} "the upload is damaged: gzip could not decompress it"`,
    'got=$(sha256sum < "$stage/bin/node" | cut -c1-64)',
    `[ "$got" = "$sum" ] || fail ${RemoteExit.checksum} "sha256 mismatch: expected $sum, got $got"`,
    'chmod 755 "$stage" "$stage/bin" "$stage/bin/node"',
    `out=$("$stage/bin/node" --version 2>&1) || fail ${RemoteExit.runtimeUnusable} "$out"`,
    `[ "$out" = "$version" ] || fail ${RemoteExit.runtimeUnusable} "it reports $out instead of $version"`,
    // A damaged copy (the probe found another checksum) is replaced whole.
    'if [ -e "$final" ] || [ -L "$final" ]; then mv -T "$final" "$stage.old"; fi',
    'mv -T "$stage" "$final"',
    'rm -rf "$stage.old"',
  ].join('\n')
}

/** stdin: the gzipped release tar. Verifies the tar's sha256 before unpacking, writes the marker, renames into place. */
export function installReleaseCommand(layout: InstallLayout, bundle: ReleaseBundle): string {
  return [
    'set -eu',
    ...createdDirs(layout.releases),
    `final=${q(layout.release(bundle.id))}; sum=${q(bundle.sha256)}`,
    'stage=',
    `mkdir -p "$created" || fail ${RemoteExit.unpack} "cannot create $created"`,
    `stage=$(mktemp -d "$created/.incoming-XXXXXX") || fail ${RemoteExit.unpack} "cannot create a staging directory in $created"`,
    `cat > "$stage/release.tar.gz" || fail ${RemoteExit.unpack} "could not store the upload"`,
    'got=$(gzip -dc < "$stage/release.tar.gz" | sha256sum | cut -c1-64)',
    `[ "$got" = "$sum" ] || fail ${RemoteExit.checksum} "sha256 mismatch: expected $sum, got $got"`,
    'mkdir "$stage/tree"',
    `tar -xzf "$stage/release.tar.gz" -C "$stage/tree" --no-same-owner || fail ${RemoteExit.unpack} "tar could not unpack the verified archive"`,
    'rm -f "$stage/release.tar.gz"',
    `printf '%s\\n' "$sum" > "$stage/tree/${settings.release.markerFile}"`,
    'chmod 755 "$stage/tree"',
    'if [ -e "$final" ] || [ -L "$final" ]; then mv -T "$final" "$stage/old"; fi',
    'mv -T "$stage/tree" "$final"',
    'rm -rf "$stage"',
  ].join('\n')
}

/** The release's own `--version`, run with its runtime: what the wrapper will run once `current` points at it. */
export function releaseVersionCommand(layout: InstallLayout, bundle: ReleaseBundle): string {
  const release = layout.release(bundle.id)
  return `${q(`${release}/runtime/bin/node`)} ${q(`${release}/bin/run.js`)} --version`
}

/** Points the symlink `path` at `target` with one rename, so readers see the old or the new target only. */
export function switchLinkCommand(path: string, target: string): string {
  const temp = `${path}.new-$$`
  return `set -eu; rm -f ${q(temp)}; ln -s ${q(target)} ${q(temp)}; mv -T ${q(temp)} ${q(path)}`
}

/** Read-only: the releases and runtimes on the node, for pruning (tab-separated, see parseListing). */
export function listCommand(layout: InstallLayout): string {
  return [
    'set -u',
    `base=${q(layout.base)}; releases=${q(layout.releases)}; runtimes=${q(layout.runtimes)}`,
    'for d in "$releases"/*/; do',
    '  [ -d "$d" ] || continue; d=${d%/}',
    `  t=$(stat -c %Y "$d/${settings.release.markerFile}" 2>/dev/null || echo 0)`,
    '  printf \'release\\t%s\\t%s\\t%s\\n\' "$t" "$(basename "$d")" "$(readlink "$d/runtime" 2>/dev/null)"',
    'done',
    'for d in "$runtimes"/*/; do [ -d "$d" ] && printf \'runtime\\t%s\\n\' "$(basename "$d")"; done',
    `find "$releases" "$runtimes" -mindepth 1 -maxdepth 1 -name '.incoming-*' -mmin +${settings.release.staleIncomingMinutes} 2>/dev/null | sed 's/^/stale\\t/'`,
    'printf \'current\\t%s\\n\' "$(readlink "$base/current" 2>/dev/null)"',
    'true',
  ].join('\n')
}

export interface NodeListing {
  releases: {id: string; installedAt: number; runtime?: string}[]
  runtimes: string[]
  /** Staging directories of interrupted uploads, old enough to remove. */
  stale: string[]
  current?: string
}

export function parseListing(stdout: string): NodeListing {
  const listing: NodeListing = {releases: [], runtimes: [], stale: []}
  for (const line of stdout.split('\n')) {
    const [kind, ...fields] = line.split('\t')
    if (kind === 'release' && RELEASE_DIR.test(fields[1] ?? '')) {
      const link = fields[2] ?? ''
      const runtime = link.startsWith('../../runtime/') ? link.slice('../../runtime/'.length) : undefined
      listing.releases.push({id: fields[1], installedAt: Number(fields[0]) || 0, ...(runtime ? {runtime} : {})})
    } else if (kind === 'runtime' && RUNTIME_DIR.test(fields[0] ?? '')) listing.runtimes.push(fields[0])
    else if (kind === 'stale' && fields[0]) listing.stale.push(fields[0])
    else if (kind === 'current' && fields[0]) listing.current = fields[0].replace(/^releases\//, '').replace(/\/$/, '')
  }
  return listing
}

/** Removes what prune decided (paths are checked against our own names before they get here). */
export function removeCommand(paths: string[]): string {
  return `rm -rf -- ${paths.map(q).join(' ')}`
}
