/**
 * Boots one stopped lab node again, as `lab up` booted it. Run in the root namespaces (`nsenter -m
 * -n` through rootNamespaceAncestor() of test/helpers/lab.ts): a test runs in xc-admin, whose
 * `ip netns exec` mount namespace has a fresh /sys without the cgroup hierarchies systemd-nspawn
 * needs.
 *
 *   node --import tsx test/helpers/boot-node.ts NAME
 */
import {bootNode, waitNodeReady} from '../../src/lib/lab/node.js'
import {labPaths} from '../../src/lib/lab/paths.js'
import {readLabState} from '../../src/lib/lab/state.js'
import {labTopology} from '../../src/lib/lab/topology.js'

const name = process.argv[2]
const state = readLabState()
const node = labTopology(state.specFile, 0).nodes.find((n) => n.name === name)
if (!node) throw new Error(`no lab node ${name}`)
await bootNode(labPaths(state.dir), node)
await waitNodeReady(labPaths(state.dir), node)
