import type {Etcd3} from 'etcd3'

import {settings} from '../settings.js'

type TxnRequest = Parameters<Etcd3['kv']['txn']>[0]
type TxnResponse = Awaited<ReturnType<Etcd3['kv']['txn']>>
export type RequestOp = NonNullable<TxnRequest['success']>[number]
export type Compare = NonNullable<TxnRequest['compare']>[number]

/** Raw etcd operations for the election: leases and create-revision compares need them. */
export const putOp = (key: string, value: unknown, lease?: string): RequestOp => ({
  request_put: {key: Buffer.from(key), value: Buffer.from(JSON.stringify(value)), ...(lease ? {lease} : {})},
})
export const deleteOp = (key: string): RequestOp => ({request_delete_range: {key: Buffer.from(key)}})
export const rangeOp = (key: string): RequestOp => ({request_range: {key: Buffer.from(key)}})
export const prefixRangeOp = (prefix: string, keysOnly = false): RequestOp => ({
  request_range: {key: Buffer.from(prefix), range_end: prefixEnd(prefix), keys_only: keysOnly},
})
export const absent = (key: string): Compare => ({key: Buffer.from(key), target: 'Version', result: 'Equal', version: 0})
export const createdAt = (key: string, revision: string): Compare => ({
  key: Buffer.from(key),
  target: 'Create',
  result: 'Equal',
  create_revision: revision,
})

function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix)
  end[end.length - 1]++
  return end
}

export async function txn(client: Etcd3, request: TxnRequest, timeoutMs: number = settings.election.callTimeoutMs): Promise<TxnResponse> {
  return client.kv.txn(request, {deadline: Date.now() + timeoutMs})
}

export interface RawKv {
  key: string
  value: unknown
  createRevision: string
  modRevision: string
  lease: string
}

/** The key-values of a range response inside a transaction response. */
export function kvsOf(res: TxnResponse, index: number): RawKv[] {
  const range = res.responses[index]?.response_range
  return (range?.kvs ?? []).map((kv) => ({
    key: kv.key.toString(),
    value: kv.value.length > 0 ? JSON.parse(kv.value.toString()) : undefined,
    createRevision: String(kv.create_revision),
    modRevision: String(kv.mod_revision),
    lease: String(kv.lease),
  }))
}
