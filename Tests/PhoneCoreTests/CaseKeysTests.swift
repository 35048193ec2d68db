import Testing

@testable import PhoneCore

/// `FileKind`, `TimerKind` and `ParameterSource` hash and compare by case, not by their raw text: each case must
/// still be equal to itself alone and key a dictionary apart from the others, and a source's number must be its place
/// in `allCases` (a `ParameterTable` entry keeps that number and reads the source back from it).
@Suite("Enums that key dictionaries, by case")
struct CaseKeysTests {
    func distinctKeys<T: Hashable & CaseIterable>(_: T.Type) -> Bool where T.AllCases == [T] {
        let cases = T.allCases
        var byCase: [T: Int] = [:]
        for (i, c) in cases.enumerated() { byCase[c] = i }
        let equalities = cases.allSatisfy { a in cases.filter { $0 == a }.count == 1 }
        return byCase.count == cases.count && cases.enumerated().allSatisfy { byCase[$1] == $0 } && equalities
            && Set(cases).count == cases.count
    }

    @Test func eachCaseIsAKeyOfItsOwn() {
        #expect(distinctKeys(FileKind.self))
        #expect(distinctKeys(TimerKind.self))
        #expect(distinctKeys(ParameterSource.self))
    }

    @Test func aSourcesNumberIsItsPlaceInAllCases() {
        for (i, source) in ParameterSource.allCases.enumerated() {
            #expect(Int(source.caseNumber) == i)
            #expect(ParameterTable.source(UInt32(i)) == source)
        }
    }
}
