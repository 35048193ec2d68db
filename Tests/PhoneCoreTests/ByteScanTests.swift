import Testing

@testable import PhoneCore

/// The URL scans the machine runs for every fetch read the bytes in place (`String.withUTF8Bytes`); they must answer
/// exactly as the `String.UTF8View` walks they replaced, which are kept here as the reference, on every text: empty,
/// shorter than what is sought, not ASCII, made of the very bytes the scans look for.
@Suite("URL scans over bytes, against the UTF8View walks they replaced")
struct ByteScanTests {
    /// The old `MacroContext.namesTheMAC`.
    static func referenceNamesTheMAC(_ text: String) -> Bool {
        let u = text.utf8
        var rest = u[...]
        while let open = rest.firstIndex(of: UInt8(ascii: "{")) {
            let name = u[u.index(after: open)...].prefix(4)
            if name.elementsEqual("MAC}".utf8) || name.elementsEqual("mac}".utf8) { return true }
            rest = u[u.index(after: open)...]
        }
        return false
    }

    /// The old `String.schemeSeparator`.
    static func referenceSchemeSeparator(_ text: String) -> Range<String.Index>? {
        let u = text.utf8
        var i = u.startIndex
        while let colon = u[i...].firstIndex(of: UInt8(ascii: ":")) {
            let a = u.index(after: colon)
            if a != u.endIndex, u[a] == UInt8(ascii: "/") {
                let b = u.index(after: a)
                if b != u.endIndex, u[b] == UInt8(ascii: "/") { return colon..<u.index(after: b) }
            }
            i = a
        }
        return nil
    }

    /// The old `PhoneMachine.pathEndsInEnc`.
    static func referencePathEndsInEnc(_ url: String) -> Bool {
        let u = url.utf8
        let end = u.firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? u.endIndex
        let tail = u[..<end].suffix(4)
        guard tail.count == 4 else { return false }
        return zip(tail, ".enc".utf8).allSatisfy { a, b in a == b || (a | 0x20) == b && b != UInt8(ascii: ".") }
    }

    /// The old `ProvisioningURL.characterProblem`.
    static func referenceCharacterProblem(_ url: String) -> String? {
        guard let bad = url.utf8.first(where: { $0 <= 0x20 || $0 == 0x7F }) else { return nil }
        return bad == 0x20
            ? "the URL holds a space: write it as %20"
            : "the URL holds the control character 0x\(String(bad, radix: 16, uppercase: true)): remove it"
    }

    /// Hand-picked edges, then 20,000 texts of 0-12 pieces drawn from the bytes the scans look for and their
    /// neighbours (case variants, multi-byte characters, controls).
    static var texts: [String] {
        var out = [
            "", "{", "}", "{MAC", "{MAC}", "{mac}", "{Mac}", "x{{MAC}", "{{mac}", ":", ":/", "://", "a://", "::://",
            ":/:/", "é://x", "☎{MAC}", ".enc", "x.enc", "a.ENC?x", "#", "?.enc", ".enc#", "enc", "x.en", "\u{7F}", " ",
            "http://h/c.EnC?x=1", "tftp://a@b:c@h#f", "\u{0E}enc", "e\u{301}://", "{MAC}\u{0}",
        ]
        let pieces = [
            "{", "}", "M", "A", "C", "m", "a", "c", ":", "/", "é", "☎", "?", "#", ".", " ", "\u{7F}", "\u{1F}", "e",
            "n",
            "E", "N", "x", "MAC}", "mac}", "://", ".enc", ".ENC", "\u{301}",
        ]
        var random = SplitMix64(seed: 5)
        for _ in 0..<20_000 {
            var text = ""
            for _ in 0..<(random.next() % 13) { text += pieces[Int(random.next() % UInt64(pieces.count))] }
            out.append(text)
        }
        return out
    }

    @Test func everyScanAnswersAsTheWalkItReplaced() {
        var mismatches: [String] = []
        for text in Self.texts {
            if MacroContext.namesTheMAC(text) != Self.referenceNamesTheMAC(text) {
                mismatches.append("namesTheMAC \(text)")
            }
            if text.schemeSeparator != Self.referenceSchemeSeparator(text) {
                mismatches.append("schemeSeparator \(text)")
            }
            if PhoneMachine.pathEndsInEnc(text) != Self.referencePathEndsInEnc(text) {
                mismatches.append("pathEndsInEnc \(text)")
            }
            if ProvisioningURL.characterProblem(text) != Self.referenceCharacterProblem(text) {
                mismatches.append("characterProblem \(text)")
            }
        }
        let count = mismatches.count
        #expect(count == 0, "the first ones: \(mismatches.prefix(10))")
    }

    @Test func theSeparatorSlicesTheSameText() throws {
        // The range is used to slice: the scheme before it and the rest after it must be the same substrings.
        for text in ["http://h/x", "é://☎", "a:b://c", "x://"] {
            let r = try #require(text.schemeSeparator)
            #expect(String(text[..<r.lowerBound]) + "://" + String(text[r.upperBound...]) == text)
            #expect(text[r] == "://")
        }
    }
}
