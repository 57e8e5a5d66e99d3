/**
 * `--auto-tls` (SPEC §2): a self-signed server certificate made with node:crypto alone, as etcd's
 * own `transport.SelfCert` makes one: organisation "etcd", the listen hosts as subject names,
 * valid for a year, written to `<data-dir>/proxy/clientCerts/{cert,key}.pem` and reused when
 * both files already exist.
 */
import { generateKeyPairSync, randomBytes, sign } from "node:crypto"
import { isIPv4, isIPv6 } from "node:net"

/** One DER element: tag, length (short or long form), content. */
const der = (tag: number, ...content: ReadonlyArray<Uint8Array>): Buffer => {
  const body = Buffer.concat(content)
  const n = body.length
  const length =
    n < 0x80
      ? [n]
      : n < 0x100
        ? [0x81, n]
        : n < 0x10000
          ? [0x82, n >> 8, n & 0xff]
          : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]
  return Buffer.concat([Buffer.from([tag, ...length]), body])
}

const sequence = (...items: ReadonlyArray<Uint8Array>) => der(0x30, ...items)

const oid = (dotted: string): Buffer => {
  const [first, second, ...rest] = dotted.split(".").map(Number)
  const bytes = [first! * 40 + second!]
  for (const arc of rest) {
    const groups = [arc & 0x7f]
    for (let v = arc >>> 7; v > 0; v >>>= 7) groups.unshift((v & 0x7f) | 0x80)
    bytes.push(...groups)
  }
  return der(0x06, Buffer.from(bytes))
}

/** A non-negative INTEGER from big-endian bytes (a leading zero keeps it positive). */
const unsignedInteger = (bytes: Buffer): Buffer =>
  der(0x02, (bytes[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes)

/** UTCTime until 2049, GeneralizedTime after, as RFC 5280 §4.1.2.5 requires. */
const time = (date: Date): Buffer => {
  const iso = date.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z"
  return date.getUTCFullYear() < 2050
    ? der(0x17, Buffer.from(iso.slice(2), "ascii"))
    : der(0x18, Buffer.from(iso, "ascii"))
}

const ipv6Bytes = (address: string): Buffer => {
  const [head, tail] = address.includes("::") ? address.split("::") : [address, undefined]
  const parts = (s: string | undefined) => (s === undefined || s === "" ? [] : s.split(":"))
  const left = parts(head)
  const right = parts(tail)
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right]
  return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]))
}

/** subjectAltName entries: an IP address as `iPAddress`, anything else as `dNSName`. */
const generalName = (host: string): Buffer => {
  const bare = host.replace(/^\[|\]$/g, "")
  if (isIPv4(bare)) return der(0x87, Buffer.from(bare.split(".").map(Number)))
  if (isIPv6(bare)) return der(0x87, ipv6Bytes(bare))
  return der(0x82, Buffer.from(bare, "ascii"))
}

const extension = (id: string, critical: boolean, value: Buffer): Buffer =>
  sequence(oid(id), ...(critical ? [der(0x01, Buffer.from([0xff]))] : []), der(0x04, value))

export interface SelfSignedPair {
  /** PEM `CERTIFICATE`. */
  readonly cert: string
  /** PEM `EC PRIVATE KEY`, as etcd writes it. */
  readonly key: string
}

/**
 * A P-256 key and a self-signed certificate for `hosts` (server authentication), valid from now
 * for `days`. P-256 rather than etcd's P-521: every TLS client takes it, and nobody verifies a
 * self-signed certificate's strength anyway.
 */
export const selfSignedCertificate = (
  hosts: ReadonlyArray<string>,
  now: Date = new Date(),
  days = 365,
): SelfSignedPair => {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" })
  const serial = randomBytes(16)
  serial[0]! &= 0x7f
  const name = sequence(der(0x31, sequence(oid("2.5.4.10"), der(0x0c, Buffer.from("etcd")))))
  const ecdsaWithSha256 = sequence(oid("1.2.840.10045.4.3.2"))
  const unique = [...new Set(hosts)]
  const extensions = [
    // keyUsage: digitalSignature and keyEncipherment, as etcd sets them.
    extension("2.5.29.15", true, der(0x03, Buffer.from([0x05, 0xa0]))),
    // extKeyUsage: serverAuth.
    extension("2.5.29.37", false, sequence(oid("1.3.6.1.5.5.7.3.1"))),
    // basicConstraints: not a CA.
    extension("2.5.29.19", true, sequence()),
    ...(unique.length > 0
      ? [extension("2.5.29.17", false, sequence(...unique.map(generalName)))]
      : []),
  ]
  const tbs = sequence(
    der(0xa0, der(0x02, Buffer.from([2]))),
    unsignedInteger(serial),
    ecdsaWithSha256,
    name,
    sequence(time(now), time(new Date(now.getTime() + days * 86_400_000))),
    name,
    publicKey.export({ type: "spki", format: "der" }),
    der(0xa3, sequence(...extensions)),
  )
  const signature = sign("sha256", tbs, privateKey)
  const certificate = sequence(tbs, ecdsaWithSha256, der(0x03, Buffer.from([0]), signature))
  const base64 = certificate.toString("base64").replace(/.{64}/g, "$&\n")
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${base64.replace(/\n$/, "")}\n-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: "sec1", format: "pem" }) as string,
  }
}
