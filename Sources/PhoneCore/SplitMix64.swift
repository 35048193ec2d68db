/// A small, fast, seedable generator (SplitMix64): the same seed gives the same sequence on every run and machine.
/// A fleet phone's jitter is reproducible from its MAC; tests use it for fleets and inputs that are "random" but the
/// same every time.
///
/// ```swift
/// var random = SplitMix64(seed: mac.value)
/// let delay = random.nextUnit() * 0.1   // in [0, 0.1)
/// ```
public struct SplitMix64: Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }

    /// In `0..<bound` (`bound` > 0; the modulo bias is negligible for the small bounds tests use).
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
