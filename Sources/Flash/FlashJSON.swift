// JSON shared by `vphone flash export`, `info --json` and `diff --json`: one encoder configuration (sorted keys,
// pretty-printed, slashes unescaped), so the same content is always the same bytes; times as ISO 8601 text;
// decoding that names the place of every problem and refuses fields it does not know.

import PhoneCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// MARK: - Encoding

enum FlashJSON {
    /// Sorted keys and a fixed layout: the bytes depend on the content only (export -> import -> export is
    /// byte-identical). A final newline, as text files have.
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        do {
            return collapseEmptyContainers(Array(try encoder.encode(value))) + [UInt8(ascii: "\n")]
        } catch {
            // Only non-finite floats fail to encode, and these documents hold none.
            preconditionFailure("flash JSON failed to encode: \(error)")
        }
    }
}

extension FlashJSON {
    /// `[\n\n    ]` -> `[]` and `{\n\n    }` -> `{}`: the pretty printer's empty containers. Safe on the bytes: a
    /// line break inside a JSON string is always escaped, so raw ones are layout.
    static func collapseEmptyContainers(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let byte = bytes[i]
            out.append(byte)
            i += 1
            // Only a raw line break after the bracket: `[ ]` inside a string stays as it is.
            guard byte == UInt8(ascii: "[") || byte == UInt8(ascii: "{"), i < bytes.count, bytes[i] == 0x0A else {
                continue
            }
            var j = i
            while j < bytes.count, bytes[j] == 0x0A || bytes[j] == 0x20 { j += 1 }
            let close = byte == UInt8(ascii: "[") ? UInt8(ascii: "]") : UInt8(ascii: "}")
            if j > i, j < bytes.count, bytes[j] == close {
                out.append(close)
                i = j + 1
            }
        }
        return out
    }
}

/// A JSON document built by hand, for reports whose shape is not one Swift type (`info`, `diff`).
enum JSONValue: Encodable, Hashable {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([String: JSONValue])

    static func time(_ time: PhoneTime) -> JSONValue {
        switch ExportTime(time).representation {
        case .text(let text): .string(text)
        case .milliseconds(let ms): .int(ms)
        }
    }

    static func optional(_ value: JSONValue?) -> JSONValue { value ?? .null }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .null: try container.encodeNil()
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

// MARK: - Times

/// A `PhoneTime` in JSON: ISO 8601 UTC text with milliseconds (`2026-11-27T08:00:00.000Z`), read and written
/// exactly. A time outside the years 0000...9999 (only a hand edit makes one) is its integer milliseconds.
struct ExportTime: Codable, Hashable {
    var time: PhoneTime

    init(_ time: PhoneTime) { self.time = time }

    /// 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z.
    static let textRange: ClosedRange<Int64> = -62_167_219_200_000...253_402_300_799_999

    enum Representation {
        case text(String)
        case milliseconds(Int64)
    }

    var representation: Representation {
        Self.textRange.contains(time.millisecondsSinceEpoch)
            ? .text(time.description) : .milliseconds(time.millisecondsSinceEpoch)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch representation {
        case .text(let text): try container.encode(text)
        case .milliseconds(let ms): try container.encode(ms)
        }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let ms = try? container.decode(Int64.self) {
            time = PhoneTime(millisecondsSinceEpoch: ms)
            return
        }
        let text: String
        do {
            text = try container.decode(String.self)
        } catch {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "expected a time like \"2026-11-27T08:00:00.000Z\" (or integer milliseconds)"
            )
        }
        guard let parsed = Self.parse(text) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "\"\(text)\" is not a time like \"2026-11-27T08:00:00.000Z\" (UTC, milliseconds)"
            )
        }
        time = parsed
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS.mmmZ` (the milliseconds may be left out); nil for anything else, including
    /// a date that does not exist (2026-02-30).
    static func parse(_ text: String) -> PhoneTime? {
        var bytes = Array(text.utf8)
        if bytes.count == 20, bytes[19] == UInt8(ascii: "Z") {
            bytes.insert(contentsOf: Array(".000".utf8), at: 19)
        }
        guard bytes.count == 24 else { return nil }
        let layout = Array("0000-00-00T00:00:00.000Z".utf8)
        for (byte, expected) in zip(bytes, layout) {
            if expected == UInt8(ascii: "0") {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
            } else if byte != expected {
                return nil
            }
        }
        func number(_ range: Range<Int>) -> Int64 {
            bytes[range].reduce(0) { $0 * 10 + Int64($1 - UInt8(ascii: "0")) }
        }
        let (year, month, day) = (number(0..<4), number(5..<7), number(8..<10))
        let (hour, minute, second, ms) = (number(11..<13), number(14..<16), number(17..<19), number(20..<23))
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60 else { return nil }
        // Howard Hinnant's days_from_civil, the inverse of CivilTime's civil_from_days.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let time = PhoneTime(
            millisecondsSinceEpoch: days * 86_400_000 + hour * 3_600_000 + minute * 60_000 + second * 1000 + ms
        )
        // A day past the month's end (2026-02-30) comes back as another date: refuse it.
        return time.description == String(decoding: bytes, as: UTF8.self) ? time : nil
    }
}

extension PhoneTime {
    /// `description` for the years 0000...9999, else `N ms since 1970`: CivilTime's arithmetic overflows near
    /// the ends of Int64, and a hand-edited image may hold any integer.
    var shown: String {
        ExportTime.textRange.contains(millisecondsSinceEpoch) ? description : "\(millisecondsSinceEpoch) ms since 1970"
    }

    /// Reads the text `description` writes: `2026-11-27T08:00:00.000Z` (UTC; the milliseconds may be left out),
    /// as in a flash export. Nil for anything else, including a day that does not exist.
    public init?(iso8601 text: String) {
        guard let time = ExportTime.parse(text) else { return nil }
        self = time
    }
}

// MARK: - Decoding

/// Any key, to list the fields an object really has.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

extension Decoder {
    /// Refuses an object with a field `Keys` does not list: a misspelt field in a hand-edited export is an
    /// error, not silently dropped data.
    func requireKnownKeys<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        let container = try self.container(keyedBy: AnyCodingKey.self)
        let known = Set(Keys.allCases.map(\.stringValue))
        for key in container.allKeys.sorted(by: { $0.stringValue < $1.stringValue })
        where !known.contains(key.stringValue) {
            let list = Keys.allCases.map { "\"\($0.stringValue)\"" }.joined(separator: ", ")
            throw DecodingError.dataCorruptedError(
                forKey: key,
                in: container,
                debugDescription: "unknown field \"\(key.stringValue)\" (this object has \(list))"
            )
        }
    }
}

extension DecodingError {
    /// Where in the document, and what: `at parameters.SIP_PASS_1.value: expected text, found a number`.
    var placeAndProblem: String {
        func path(_ codingPath: [any CodingKey]) -> String {
            guard !codingPath.isEmpty else { return "the top level" }
            var text = ""
            for key in codingPath {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += (text.isEmpty ? "" : ".") + key.stringValue
                }
            }
            return text
        }
        switch self {
        case .keyNotFound(let key, let context):
            return "at \(path(context.codingPath)): the field \"\(key.stringValue)\" is missing"
        case .typeMismatch(let type, let context):
            return "at \(path(context.codingPath)): expected \(Self.describe(type))"
        case .valueNotFound(let type, let context):
            return "at \(path(context.codingPath)): expected \(Self.describe(type)), found null"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty, let underlying = context.underlyingError {
                // Not JSON at all: the parser's message says where (line and column).
                return "not valid JSON: \(Self.underlyingMessage(underlying))"
            }
            return "at \(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "\(self)"
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "text"
        case is Int.Type, is Int64.Type: "an integer"
        case is Bool.Type: "true or false"
        default: "\(type)".hasPrefix("Array") ? "a list" : "an object"
        }
    }

    private static func underlyingMessage(_ error: any Error) -> String {
        let text = "\(error)"
        // swift-foundation: `dataCorrupted(... debugDescription: "Unexpected character 'x' around line 3, column 5."`
        if let start = text.firstRange(of: "debugDescription: \"")?.upperBound,
            let end = text[start...].firstIndex(of: "\"")
        {
            return String(text[start..<end])
        }
        return text
    }
}
