/** What a peer's `/members` answer must show before it may replace the member list (SPEC §5.3). */
import { normalizeHost } from "./Loop.js"
import { Member } from "./Member.js"

/** One peer's answer as the member client decoded it. */
export interface PeerAnswer {
  /** The peer URL the proxy asked. */
  readonly peer: string
  readonly clusterId: string
  readonly members: ReadonlyArray<Member>
}

/** The member list the proxy trusts now; `clusterId` is undefined until a first answer is taken. */
export interface TrustedList {
  readonly clusterId: string | undefined
  readonly members: ReadonlyArray<Member>
}

export type Judgement =
  /** Not a member list a live member of this cluster can mean: never used. */
  | {
      readonly _tag: "Refused"
      readonly peer: string
      readonly kind: "empty" | "not-self"
      readonly reason: string
    }
  | {
      readonly _tag: "Plausible"
      readonly peer: string
      readonly clusterId: string
      /** The member that answered, found in its own answer by the peer URL it was asked on. */
      readonly answering: Member
      /** The answer with what it leaves out filled from the trusted list (client URLs, names). */
      readonly members: ReadonlyArray<Member>
      /** Trusted members the answer leaves out (all of them when the cluster id changed). */
      readonly lost: ReadonlyArray<Member>
      /** Every member has a client URL, given now or known from before. */
      readonly complete: boolean
      /** Endpoints the merged list gives. */
      readonly clientUrlCount: number
    }

export type Plausible = Extract<Judgement, { readonly _tag: "Plausible" }>

const portOf = (url: URL): string =>
  url.port !== "" ? url.port : url.protocol === "https:" ? "443" : "80"

/** Scheme, host and port; `undefined` for a string that is not a URL. */
export const peerKey = (peerUrl: string): string | undefined => {
  if (!URL.canParse(peerUrl)) return undefined
  const url = new URL(peerUrl)
  return `${url.protocol}//${normalizeHost(url.hostname)}:${portOf(url)}`
}

/** Whether `a` and `b` name the same scheme, host and port. */
export const samePeerUrl = (a: string, b: string): boolean => {
  const key = peerKey(a)
  return key !== undefined && key === peerKey(b)
}

const names = (members: ReadonlyArray<Member>): string =>
  members.map((m) => m.name || m.id).join(", ")

/**
 * Judges one answer against the trusted list. `isAskedPeer` says whether one of a member's peer
 * URLs is the URL that was asked (the caller may resolve host names for it).
 *
 * A member that is starting answers 200 with a valid cluster id while it replays its log, and
 * its list is then `null`, partial, or without client URLs (observed for up to about 1 s). Such
 * a list either leaves the answering member out (refused here), or leaves client URLs out
 * (filled from what is known), or leaves members out (`lost`: the caller needs a second member
 * to agree, or the answering member to report a leader).
 */
export const judgeAnswer = (
  answer: PeerAnswer,
  trusted: TrustedList,
  isAskedPeer: (peerUrl: string) => boolean,
): Judgement => {
  const { peer } = answer
  if (answer.members.length === 0) {
    return { _tag: "Refused", peer, kind: "empty", reason: "answered an empty member list" }
  }
  const answering = answer.members.find((m) => m.peerURLs.some(isAskedPeer))
  if (answering === undefined) {
    return {
      _tag: "Refused",
      peer,
      kind: "not-self",
      reason: `its member list (${names(answer.members)}) does not include the member at ${peer}`,
    }
  }
  const known = new Map(trusted.members.map((m) => [m.id, m]))
  const members = answer.members.map((m) => {
    const before = known.get(m.id)
    if (before === undefined) return m
    const keepClients = m.clientURLs.length === 0 && before.clientURLs.length > 0
    const keepPeers = m.peerURLs.length === 0 && before.peerURLs.length > 0
    const keepName = m.name === "" && before.name !== ""
    if (!keepClients && !keepPeers && !keepName) return m
    return new Member({
      id: m.id,
      name: keepName ? before.name : m.name,
      peerURLs: keepPeers ? before.peerURLs : m.peerURLs,
      clientURLs: keepClients ? before.clientURLs : m.clientURLs,
      isLearner: m.isLearner,
    })
  })
  const ids = new Set(members.map((m) => m.id))
  const sameCluster = trusted.clusterId === undefined || trusted.clusterId === answer.clusterId
  const lost = sameCluster ? trusted.members.filter((m) => !ids.has(m.id)) : trusted.members
  return {
    _tag: "Plausible",
    peer,
    clusterId: answer.clusterId,
    answering: members.find((m) => m.id === answering.id)!,
    members,
    lost,
    complete: members.every((m) => m.clientURLs.length > 0),
    clientUrlCount: new Set(members.flatMap((m) => m.clientURLs)).size,
  }
}

/** A second member confirms a list that loses members: same cluster, same members. */
export const confirms = (a: Plausible, b: Plausible): boolean => {
  if (a.answering.id === b.answering.id || a.clusterId !== b.clusterId) return false
  if (a.members.length !== b.members.length) return false
  const ids = new Set(a.members.map((m) => m.id))
  return b.members.every((m) => ids.has(m.id))
}

/**
 * Why an answer that loses members was not taken, for the log; `superseded` when another
 * member's answer was taken instead.
 */
export const unconfirmedReason = (
  judgement: Plausible,
  trusted: TrustedList,
  superseded: boolean,
): string => {
  const changed = trusted.clusterId !== undefined && judgement.clusterId !== trusted.clusterId
  const what = changed
    ? `it names cluster ${judgement.clusterId}, not ${trusted.clusterId}`
    : `its member list leaves out ${names(judgement.lost)}`
  return superseded
    ? `${what}, which another member's answer contradicts`
    : `${what}; no second member confirms it and the member reports no leader`
}

/** The peer URLs a refresh asks: the cluster source's and every trusted member's, sorted. */
export const peersToAsk = (
  sourcePeers: ReadonlyArray<string>,
  trusted: ReadonlyArray<Member>,
): ReadonlyArray<string> => {
  const byKey = new Map<string, string>()
  for (const peer of [...sourcePeers, ...trusted.flatMap((m) => m.peerURLs)]) {
    const clean = peer.replace(/\/+$/, "")
    const key = peerKey(clean) ?? clean
    if (!byKey.has(key)) byKey.set(key, clean)
  }
  return [...byKey.values()].sort()
}
