/// xorshift64*: a generator whose sequence is fixed by its seed, for tests that walk random event
/// sequences and must walk the same ones on every run.
struct SeededRandom {
    private var s: UInt64

    init(seed: UInt64) { s = seed == 0 ? 1 : seed }

    /// A number in 0..<n.
    mutating func next(_ n: Int) -> Int {
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27
        return Int((s &* 2685821657736338717) >> 33) % n
    }
}
