/// One thread's HMAC contexts for the keys of the current ring, created on first use.
///
/// Each worker owns one (it is not thread-safe). When the shared ring is replaced by a reload,
/// the next call sees a different ring object and rebuilds: keys are never looked up by name.
public final class KeyContexts {
    private var ring: KeyRing?
    private var contexts: [HMACContext?] = []

    public init() {}

    /// The context for key `index` of `ring`, or nil when the key has no secret.
    @inline(__always)
    public func context(_ index: Int, of ring: KeyRing) -> HMACContext? {
        if ring !== self.ring {
            self.ring = ring
            contexts = Array(repeating: nil, count: ring.keys.count)
        }
        if let c = contexts[index] { return c }
        guard let secret = ring.keys[index].secret,
              let c = HMACContext(algorithm: ring.keys[index].algorithm, secret: secret) else { return nil }
        contexts[index] = c
        return c
    }
}
