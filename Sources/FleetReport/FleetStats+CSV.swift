import Foundation

/// One phone's outcome, kept compactly until the CSV is written (texts are indices into an interned table).
struct PhoneRow {
    var mac: String
    var latencyUs: Int64
    var intendedStartS: Double
    var completedAtS: Double
    var outcome: Int32
    var initial: Int32
    var standard: Int32
    var product: Int32
    var master: Int32
    var error: Int32

    static let csvHeader =
        "mac,outcome,latency_ms,intended_start_s,completed_at_s,initial,standard,product,master,error"

    static func csv(_ rows: [PhoneRow], strings: [String]) -> String {
        var ordered: [(key: MACKey, position: Int)] = []
        ordered.reserveCapacity(rows.count)
        for (position, row) in rows.enumerated() {
            ordered.append((MACKey(row.mac), position))
        }
        // Stable: a MAC recorded twice keeps its recording order.
        ordered.sort { left, right in
            left.key != right.key ? left.key < right.key : left.position < right.position
        }
        var text = csvHeader + "\n"
        text.reserveCapacity(rows.count * 80 + 100)
        func string(_ index: Int32) -> String { index < 0 ? "" : strings[Int(index)] }
        for entry in ordered {
            let row = rows[entry.position]
            let fields = [
                field(row.mac),
                field(string(row.outcome)),
                Format.fixed(Double(row.latencyUs) / 1000, 3),
                Format.fixed(row.intendedStartS, 3),
                Format.fixed(row.completedAtS, 3),
                field(string(row.initial)),
                field(string(row.standard)),
                field(string(row.product)),
                field(string(row.master)),
                field(neutralized(string(row.error))),
            ]
            text += fields.joined(separator: ",")
            text += "\n"
        }
        return text
    }

    /// RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled.
    private static func field(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Error texts can carry what a server sent: one starting like a formula (`=`, `+`, `-`, `@`) gets a leading
    /// apostrophe so a spreadsheet shows it instead of evaluating it (OWASP CSV injection).
    private static func neutralized(_ value: String) -> String {
        guard let first = value.first, "=+-@\t\r".contains(first) else { return value }
        return "'" + value
    }
}

/// Sorts MACs by their value whatever the separators or case (`00:80:f0:…` next to `0080F0…`); anything that is
/// not 12 hex digits sorts after, by its text.
private struct MACKey: Comparable {
    var value: UInt64?
    var text: String

    init(_ mac: String) {
        text = mac
        var digits = 0
        var parsed: UInt64 = 0
        for character in mac where character != ":" && character != "-" && character != "." {
            guard let nibble = character.hexDigitValue, digits < 12 else {
                value = nil
                return
            }
            parsed = parsed << 4 | UInt64(nibble)
            digits += 1
        }
        value = digits == 12 ? parsed : nil
    }

    static func < (lhs: MACKey, rhs: MACKey) -> Bool {
        switch (lhs.value, rhs.value) {
        case let (left?, right?): left < right || (left == right && lhs.text < rhs.text)
        case (.some, nil): true
        case (nil, .some): false
        case (nil, nil): lhs.text < rhs.text
        }
    }
}
