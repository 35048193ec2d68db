/// The base64 of `openssl enc -a`: a strict decoder that still takes any line length, CRLF or LF and stray
/// whitespace, and the encoder with OpenSSL's 64-column lines.
///
/// Written here rather than through EVP_DecodeBlock, which neither skips newlines nor reports where the text
/// goes wrong, and which pads its output with zeros instead of honouring `=`. Package-visible for the fuzz
/// target of this layer alone (FuzzEntries).
package enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static let whitespace: UInt8 = 0xFE
    private static let padding: UInt8 = 0xFD
    private static let invalid: UInt8 = 0xFF

    /// Byte -> 6-bit value, or one of the markers above.
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: invalid, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        for c in [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C] { table[c] = whitespace }
        table[Int(UInt8(ascii: "="))] = padding
        return table
    }()

    private enum Stop {
        case invalidByte(at: Int)
        case misplacedPadding(at: Int)
        case afterEnd(at: Int)
        case cutOff
    }

    // MARK: - Decoding

    /// Decodes `text`, ignoring whitespace anywhere; a `=` may only close the last 4-character group.
    /// - Throws: `.notBase64` naming the line, column and byte offset of the first bad byte; `.truncated` when
    ///   the text stops inside a 4-character group.
    package static func decode(_ text: [UInt8]) throws(DecryptionError) -> [UInt8] {
        var stop: Stop?
        let decoded = [UInt8](unsafeUninitializedCapacity: text.count / 4 * 3 + 3) { out, written in
            values.withUnsafeBufferPointer { values in
                text.withUnsafeBufferPointer { src in
                    stop = decode(src, values: values, into: out, written: &written)
                }
            }
        }
        switch stop {
        case nil:
            return decoded
        case .cutOff:
            throw .truncated("its base64 text stops in the middle of a 4-character group")
        case .invalidByte(let offset):
            throw notBase64(text, at: offset, "unexpected \(describe(text[offset]))")
        case .misplacedPadding(let offset):
            throw notBase64(text, at: offset, "'=' padding in the middle of the data")
        case .afterEnd(let offset):
            throw notBase64(text, at: offset, "\(describe(text[offset])) after the closing '=' padding")
        }
    }

    private static func decode(
        _ src: UnsafeBufferPointer<UInt8>,
        values: UnsafeBufferPointer<UInt8>,
        into out: UnsafeMutableBufferPointer<UInt8>,
        written: inout Int
    ) -> Stop? {
        var group: UInt32 = 0
        var inGroup = 0
        var pads = 0
        var n = 0
        var i = 0
        while i < src.count {
            // Fast path: four alphabet characters at a group boundary (all of a 64-column line but its newline).
            if inGroup == 0 && pads == 0 && i + 4 <= src.count {
                let a = values[Int(src[i])]
                let b = values[Int(src[i + 1])]
                let c = values[Int(src[i + 2])]
                let d = values[Int(src[i + 3])]
                if (a | b | c | d) < 64 {
                    let quad = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                    out[n] = UInt8(truncatingIfNeeded: quad >> 16)
                    out[n + 1] = UInt8(truncatingIfNeeded: quad >> 8)
                    out[n + 2] = UInt8(truncatingIfNeeded: quad)
                    n += 3
                    i += 4
                    continue
                }
            }
            defer { i += 1 }
            let v = values[Int(src[i])]
            if v < 64 {
                if pads > 0 {
                    written = n
                    return .afterEnd(at: i)
                }
                group = group << 6 | UInt32(v)
                inGroup += 1
                if inGroup == 4 {
                    out[n] = UInt8(truncatingIfNeeded: group >> 16)
                    out[n + 1] = UInt8(truncatingIfNeeded: group >> 8)
                    out[n + 2] = UInt8(truncatingIfNeeded: group)
                    n += 3
                    inGroup = 0
                    group = 0
                }
            } else if v == whitespace {
                continue
            } else if v == padding {
                // "xx==" or "xxx=": the only places a '=' may stand.
                if inGroup < 2 || inGroup + pads >= 4 {
                    written = n
                    return pads > 0 ? .afterEnd(at: i) : .misplacedPadding(at: i)
                }
                pads += 1
                if inGroup + pads == 4 {
                    n += flush(group, inGroup, out, at: n)
                    inGroup = 0
                }
            } else {
                written = n
                return .invalidByte(at: i)
            }
        }
        // "xx=" with its second '=' missing, or a lone character: the text stops inside a group.
        if (pads > 0 && inGroup > 0) || inGroup == 1 {
            written = n
            return .cutOff
        }
        if inGroup > 1 { n += flush(group, inGroup, out, at: n) }  // unpadded tail: tolerated
        written = n
        return nil
    }

    /// Writes the bytes of a partial group of 2 or 3 characters; returns how many.
    private static func flush(_ group: UInt32, _ chars: Int, _ out: UnsafeMutableBufferPointer<UInt8>, at n: Int) -> Int
    {
        if chars == 2 {
            out[n] = UInt8(truncatingIfNeeded: group >> 4)
            return 1
        }
        out[n] = UInt8(truncatingIfNeeded: group >> 10)
        out[n + 1] = UInt8(truncatingIfNeeded: group >> 2)
        return 2
    }

    private static func notBase64(_ text: [UInt8], at offset: Int, _ what: String) -> DecryptionError {
        var line = 1
        var lineStart = 0
        for i in 0..<offset where text[i] == 0x0A {
            line += 1
            lineStart = i + 1
        }
        return DecryptionError(
            .notBase64,
            "the file is not `openssl enc -a` output: it is not base64 at line \(line), column "
                + "\(offset - lineStart + 1) (byte offset \(offset)): \(what)"
        )
    }

    private static func describe(_ byte: UInt8) -> String {
        let hex = String(byte, radix: 16, uppercase: true)
        let code = "0x" + (hex.count == 1 ? "0" + hex : hex)
        return (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))' (\(code))" : "byte \(code)"
    }

    // MARK: - Encoding

    /// Encodes like `openssl enc -a`: lines of 64 characters, each ending in "\n", the last one too.
    package static func encode(_ data: [UInt8]) -> [UInt8] {
        let chars = (data.count + 2) / 3 * 4
        let capacity = chars + (chars + 63) / 64
        return [UInt8](unsafeUninitializedCapacity: capacity) { out, written in
            alphabet.withUnsafeBufferPointer { alphabet in
                data.withUnsafeBufferPointer { src in
                    var n = 0
                    var column = 0
                    var i = 0
                    func put(_ c: UInt8) {
                        out[n] = c
                        n += 1
                        column += 1
                        if column == 64 {
                            out[n] = 0x0A
                            n += 1
                            column = 0
                        }
                    }
                    while i < src.count {
                        let remaining = src.count - i
                        let b0 = UInt32(src[i])
                        let b1 = remaining > 1 ? UInt32(src[i + 1]) : 0
                        let b2 = remaining > 2 ? UInt32(src[i + 2]) : 0
                        let group = b0 << 16 | b1 << 8 | b2
                        put(alphabet[Int(group >> 18 & 63)])
                        put(alphabet[Int(group >> 12 & 63)])
                        put(remaining > 1 ? alphabet[Int(group >> 6 & 63)] : UInt8(ascii: "="))
                        put(remaining > 2 ? alphabet[Int(group & 63)] : UInt8(ascii: "="))
                        i += 3
                    }
                    if column > 0 {
                        out[n] = 0x0A
                        n += 1
                    }
                    written = n
                }
            }
        }
    }
}
