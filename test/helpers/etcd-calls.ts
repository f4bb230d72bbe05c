/**
 * Makes sequential etcd reads through EtcdStore, as a CLI command does, and prints how long each
 * took (JSON, one line). Run inside a network namespace: `etcd-calls.ts ENDPOINTS COUNT`.
 */
import {EtcdStore} from '../../src/lib/etcd/store.js'

const [endpoints = '', count = '10'] = process.argv.slice(2)
const store = new EtcdStore({endpoints: endpoints.split(','), cluster: 'gate'})
const took: number[] = []
for (let i = 0; i < Number(count); i++) {
  const started = performance.now()
  await store.getJson(store.keys.spec())
  took.push(Math.round(performance.now() - started))
}
await store.close()
console.log(JSON.stringify({took}))
