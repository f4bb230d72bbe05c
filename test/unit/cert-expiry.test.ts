/** Certificate expiry (what is due, health's verdicts, /metrics) and the CRL as signed, read back with the X.509 parser. */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {createCa, issueCertificate} from '../../src/lib/certs/authority.js'
import {signCrl} from '../../src/lib/certs/crl.js'
import {DAY_MS, expiryStatus, renewalDue} from '../../src/lib/certs/expiry.js'
import {acmeRetryDelayMs} from '../../src/lib/certs/keeper.js'
import {parseThreshold} from '../../src/lib/certs/renewal.js'
import {x509} from '../../src/lib/certs/x509.js'
import {settings} from '../../src/lib/settings.js'
import {certificateChecks, type CertificateState} from '../../src/lib/health/certs.js'

const NOW = Date.parse('2027-01-01T00:00:00Z')
/** A validity of `life` days with `left` days to go at NOW. */
const validity = (life: number, left: number) => ({notBefore: new Date(NOW + (left - life) * DAY_MS).toISOString(), notAfter: new Date(NOW + left * DAY_MS).toISOString()})

describe('certificate expiry', () => {
  it('a failed ACME renewal waits keeperRetryMs, then twice as long each time, never more than an hour', () => {
    assert.equal(settings.certs.keeperRetryMs, 60_000)
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8, 50].map((failures) => acmeRetryDelayMs(failures) / 60_000),
      [1, 2, 4, 8, 16, 32, 60, 60, 60],
    )
  })

  it('a year-long certificate: due and warned under 30 days, failed under 7, failed once expired', () => {
    assert.deepEqual(
      [40, 29, 8, 6.9, -1].map((left) => [renewalDue(validity(365, left), NOW), expiryStatus(validity(365, left), NOW)]),
      [
        [false, 'ok'],
        [true, 'warn'],
        [true, 'warn'],
        [true, 'fail'],
        [true, 'fail'],
      ],
    )
  })

  it('a short-lived certificate is judged by its own lifetime: due in its last third, failed in its last tenth', () => {
    const hour = 1 / 24
    assert.deepEqual(
      [0.7, 0.3, 0.09].map((share) => [renewalDue(validity(hour, share * hour), NOW), expiryStatus(validity(hour, share * hour), NOW)]),
      [
        [false, 'ok'],
        [true, 'warn'],
        [true, 'fail'],
      ],
    )
    // An explicit --before wins over the lifetime share.
    assert.equal(renewalDue(validity(365, 100), NOW, 120 * DAY_MS), true)
  })

  it('--before: days, hours, minutes or bare days; anything else is refused with the forms it takes', () => {
    assert.deepEqual(['30d', '12h', '90m', '2', '1.5d'].map(parseThreshold), [30 * DAY_MS, 12 * 3_600_000, 90 * 60_000, 2 * DAY_MS, 1.5 * DAY_MS])
    for (const bad of ['soon', '-1d', '3w', '']) assert.throws(() => parseThreshold(bad), /is not a duration[\s\S]*/)
  })

  it('health: a check per live certificate and the CA, revoked ones left out, the CRL judged by its next update', () => {
    const state: CertificateState = {
      ca: {subject: 'CN=xcluster CA x', ...validity(3650, 3000)},
      certificates: [
        {name: 'web', serial: '01', ...validity(365, 200), revoked: false},
        {name: 'api', serial: '02', ...validity(365, 20), revoked: false},
        {name: 'old', serial: '03', ...validity(365, 3), revoked: true},
        {name: 'db', serial: '04', ...validity(365, 3), revoked: false},
      ],
      crl: {number: 4, nextUpdate: new Date(NOW + 10 * DAY_MS).toISOString()},
    }
    const checks = certificateChecks(state, NOW)
    assert.deepEqual(
      checks.map((c) => [c.name, c.status, c.next]),
      [
        ['cert:ca', 'ok', undefined],
        ['cert:web', 'ok', undefined],
        ['cert:api', 'warn', 'xcluster cert renew api'],
        ['cert:db', 'fail', 'xcluster cert renew db'],
        ['cert:crl', 'warn', 'xcluster cert crl --refresh'],
      ],
    )
    assert.match(checks[3]!.observed, /^certificate db \(serial 04\) valid until \S+ \(3 days left\)$/)
  })
})

describe('the CRL', () => {
  it('is signed by the CA, names it as issuer, lists each serial with its reason and carries its number', async () => {
    const ca = await createCa({cluster: 'unit'})
    const a = await issueCertificate(ca, {commonName: 'a', sans: ['a'], profile: 'server'})
    const b = await issueCertificate(ca, {commonName: 'b', sans: ['b'], profile: 'server'})
    const signed = await signCrl(
      ca,
      [
        {serial: a.serial, name: 'a', revokedAt: '2026-12-01T00:00:00.000Z', reason: 'key-compromise'},
        {serial: b.serial, name: 'b', revokedAt: '2026-12-02T00:00:00.000Z', reason: 'superseded'},
      ],
      7,
    )
    const crl = new x509.X509Crl(signed.pem)
    const caCert = new x509.X509Certificate(ca.certPem)
    assert.equal(crl.issuer, caCert.subject)
    assert.ok(await crl.verify({publicKey: caCert.publicKey}))
    assert.deepEqual(
      crl.entries.map((e) => [e.serialNumber.toLowerCase(), e.reason]),
      [
        [a.serial, x509.X509CrlReason.keyCompromise],
        [b.serial, x509.X509CrlReason.superseded],
      ],
    )
    const number = crl.getExtension('2.5.29.20')
    assert.ok(number)
    assert.deepEqual([...new Uint8Array(number.value)], [0x02, 0x01, 0x07])
    assert.equal(Date.parse(signed.nextUpdate) - Date.parse(signed.thisUpdate) > 29 * DAY_MS, true)
  })
})
