import ConfigFormats
import Testing

@testable import PhoneCore

/// `ParameterTable` is the compact form of the `[String: Parameter]` it replaced: it must read the same.
@Suite("ParameterTable")
struct ParameterTableTests {
    @Test("random sets and removals read like a dictionary")
    func behavesLikeADictionary() {
        var model: [String: Parameter] = [:]
        var table: ParameterTable = [:]
        var random = SystemRandomNumberGenerator()
        let sources = ParameterSource.allCases
        let perms = ["", "!", "R", "!RW"]
        for step in 0..<3_000 {
            let name = "NAME_NUMBER_LONGER_THAN_SMALL_\(Int.random(in: 0..<200, using: &random))"
            if Int.random(in: 0..<4, using: &random) == 0 {
                model[name] = nil
                table[name] = nil
            } else {
                let p = Parameter(
                    name: name,
                    value: "v\(step)",
                    source: sources.randomElement(using: &random)!,
                    perm: perms.randomElement(using: &random)!,
                    access: step % 3 == 0 ? "A" : ""
                )
                model[name] = p
                table[name] = p
            }
            #expect(table[name] == model[name])
        }
        #expect(table.count == model.count)
        #expect(table.dictionary == model)
        #expect(table == ParameterTable(model))
        #expect(table.keys == model.keys.sorted())
        #expect(Dictionary(uniqueKeysWithValues: table.map { ($0.key, $0.value) }) == model)
        for (name, p) in model { #expect(table.value(name) == p.value && table.source(name) == p.source) }
    }

    @Test("the merge keeps the precedence rules: standard > product > master > initial, local edits on top")
    func mergeMatchesThePrecedenceRules() {
        func doc(_ pairs: [(String, String, String)], initial: [(String, String)] = []) -> ConfigDocument {
            ConfigDocument(
                format: .xml,
                initial: Dictionary(uniqueKeysWithValues: initial.map { ($0.0, ConfigEntry(name: $0.0, value: $0.1)) }),
                device: Dictionary(
                    uniqueKeysWithValues: pairs.map { ($0.0, ConfigEntry(name: $0.0, value: $0.1, perm: $0.2)) }
                )
            )
        }
        let files = [
            MergeInput(
                kind: .initial,
                document: doc([("A", "i", ""), ("I", "i", "")], initial: [("A", "ii")]),
                fresh: true
            ),
            MergeInput(kind: .master, document: doc([("A", "m", ""), ("M", "m", ""), ("E", "m", "!")]), fresh: true),
            MergeInput(kind: .product, document: doc([("A", "p", ""), ("P", "p", "")]), fresh: false),
            MergeInput(kind: .standard, document: doc([("A", "s", ""), ("K", "s", "!")]), fresh: false),
        ]
        let edits = [
            "K": LocalEdit(name: "K", value: "local", editedAt: PhoneTime(millisecondsSinceEpoch: 0)),
            "E": LocalEdit(name: "E", value: "local", editedAt: PhoneTime(millisecondsSinceEpoch: 0)),
            "N": LocalEdit(name: "N", value: "local", editedAt: PhoneTime(millisecondsSinceEpoch: 0)),
        ]
        let r = Merge.effective(files: files, localEdits: edits)
        #expect(r.parameters["A"]?.value == "s" && r.parameters["A"]?.source == .standard)
        #expect(r.parameters["P"]?.source == .product && r.parameters["M"]?.source == .master)
        #expect(r.parameters["I"]?.source == .initial)
        // K: perm "!" but from a saved copy: the local edit stays. E: fresh with "!": the provisioned value wins.
        #expect(r.parameters["K"]?.value == "local" && r.keptLocalEdits.contains("K"))
        #expect(r.parameters["E"]?.value == "m" && r.overriddenLocalEdits.map(\.name) == ["E"])
        #expect(r.parameters["N"]?.source == .local)
        #expect(r.shadowed["A"] == [.product, .master, .initial, .initial])  // both sections of the initial file
        #expect(r.countBySource == [.standard: 1, .product: 1, .master: 2, .initial: 1, .local: 2])
        let quiet = Merge.effective(files: files, localEdits: edits, recordShadowed: false)
        #expect(quiet.parameters == r.parameters && quiet.shadowed.isEmpty)
    }
}
