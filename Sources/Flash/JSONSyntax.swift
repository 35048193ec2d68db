/// Finds the first syntax error in JSON text, with its line and column: JSONDecoder on Linux only says "The
/// given data was not valid JSON", and a user fixing a hand-edited export needs to know where.
enum JSONSyntax {
    /// Nested objects and arrays deeper than this are refused (an export is 4 levels deep).
    static let maxDepth = 256

    /// `line 3, column 14: expected ',' or '}', found '"'`, or nil when `bytes` is one valid JSON value.
    static func firstError(in bytes: [UInt8]) -> String? {
        var reader = Reader(bytes: bytes)
        do {
            if let bad = invalidUTF8(bytes) {
                throw Problem(at: bad, message: "the text is not valid UTF-8")
            }
            reader.skipBlanks()
            try reader.value(depth: 0)
            reader.skipBlanks()
            if reader.index < bytes.count { throw reader.problem("expected the end of the document") }
            return nil
        } catch {
            return reader.describe(error)
        }
    }

    struct Problem: Error {
        var at: Int
        var message: String
    }

    private static func invalidUTF8(_ bytes: [UInt8]) -> Int? {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                offset += UTF8.width(scalar)
            case .emptyInput:
                return nil
            case .error:
                return offset
            }
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func skipBlanks() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        func problem(_ expected: String) -> Problem {
            guard index < bytes.count else {
                return Problem(at: index, message: "\(expected), found the end of the text")
            }
            let found: String
            let byte = bytes[index]
            if byte >= 0x20 && byte < 0x7F {
                found = "'\(Character(Unicode.Scalar(byte)))'"
            } else {
                found = "the byte 0x\(String(byte, radix: 16, uppercase: true))"
            }
            return Problem(at: index, message: "\(expected), found \(found)")
        }

        mutating func expect(_ byte: UInt8, _ what: String) throws(Problem) {
            guard index < bytes.count, bytes[index] == byte else { throw problem("expected \(what)") }
            index += 1
        }

        mutating func value(depth: Int) throws(Problem) {
            guard depth < JSONSyntax.maxDepth else {
                throw Problem(at: index, message: "nested deeper than \(JSONSyntax.maxDepth) levels")
            }
            guard index < bytes.count else { throw problem("expected a value") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                index += 1
                skipBlanks()
                if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return
                }
                while true {
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                        throw problem("expected a field name in double quotes")
                    }
                    try string()
                    skipBlanks()
                    try expect(UInt8(ascii: ":"), "':' after the field name")
                    skipBlanks()
                    try value(depth: depth + 1)
                    skipBlanks()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ",") else { break }
                    index += 1
                    skipBlanks()
                }
                try expect(UInt8(ascii: "}"), "',' or '}'")
            case UInt8(ascii: "["):
                index += 1
                skipBlanks()
                if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return
                }
                while true {
                    try value(depth: depth + 1)
                    skipBlanks()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ",") else { break }
                    index += 1
                    skipBlanks()
                }
                try expect(UInt8(ascii: "]"), "',' or ']'")
            case UInt8(ascii: "\""):
                try string()
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                try number()
            default:
                for word in ["true", "false", "null"] where bytes[index...].starts(with: word.utf8) {
                    index += word.utf8.count
                    return
                }
                throw problem(
                    "expected a value (text in double quotes, a number, an object, a list, true, false or null)"
                )
            }
        }

        mutating func string() throws(Problem) {
            index += 1  // the opening quote
            while index < bytes.count {
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return
                case UInt8(ascii: "\\"):
                    index += 1
                    guard index < bytes.count else { throw problem("expected an escape after '\\'") }
                    let escape = bytes[index]
                    if escape == UInt8(ascii: "u") {
                        let hex = bytes[(index + 1)...].prefix(4)
                        guard hex.count == 4, hex.allSatisfy({ hexDigit($0) }) else {
                            throw problem("expected 4 hex digits after '\\u'")
                        }
                        index += 5
                    } else if Array(#""\/bfnrt"#.utf8).contains(escape) {
                        index += 1
                    } else {
                        throw problem(#"expected one of \" \\ \/ \b \f \n \r \t \uXXXX"#)
                    }
                case 0..<0x20:
                    throw problem(
                        "expected the closing '\"' (a line break or control character inside text must be escaped, e.g. \\n)"
                    )
                default:
                    index += 1
                }
            }
            throw problem("expected the closing '\"'")
        }

        mutating func number() throws(Problem) {
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { throw problem("expected a digit") }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { throw problem("expected a digit after '.'") }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    index += 1
                }
                guard digits() > 0 else { throw problem("expected a digit in the exponent") }
            }
        }

        mutating func digits() -> Int {
            let start = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            return index - start
        }

        func hexDigit(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
        }

        /// `line L, column C: message`, columns counted in characters.
        func describe(_ error: any Error) -> String {
            guard let problem = error as? Problem else { return "\(error)" }
            let before = bytes[..<min(problem.at, bytes.count)]
            let line = 1 + before.count { $0 == 0x0A }
            let lineStart = before.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
            let column = 1 + bytes[lineStart..<before.endIndex].count { $0 & 0xC0 != 0x80 }
            return "line \(line), column \(column): \(problem.message)"
        }
    }
}
