import CPKCS11
import Foundation

extension HSMToken {
    /// The values of the private data objects (CKO_DATA) labelled `label` (normally one; two for a moment while
    /// ``replaceDataObject(label:value:)`` runs in another process).
    ///
    /// Data objects hold small pieces of state that must not live in the store alone (the audit log's head): private,
    /// so a session without a PIN can neither read nor change them, and outside the database, so write access to the
    /// database alone cannot roll them back.
    public func dataObjects(label: String) throws -> [[UInt8]] {
        // An object found may be destroyed by a concurrent replace before it is read (CKR_OBJECT_HANDLE_INVALID): skip
        // it, and look again if every one found vanished (the new one was created before the old were destroyed).
        for _ in 0..<5 {
            let handles = try dataObjectHandles(label: label)
            var values: [[UInt8]] = []
            for handle in handles {
                do {
                    values.append(try attribute(CK_ATTRIBUTE_TYPE(CKA_VALUE), of: handle))
                } catch let error as HSMError where error.returnValue == CK_RV(CKR_OBJECT_HANDLE_INVALID) {
                    continue
                }
            }
            if !values.isEmpty || handles.isEmpty { return values }
        }
        return []
    }

    /// Replaces the private data object labelled `label` by one holding `value` (CKA_TOKEN, CKA_PRIVATE, not
    /// copyable): the new object is created first, then the old ones destroyed, so a reader never finds none.
    /// (A data object's CKA_VALUE cannot be changed in place on SoftHSM2.)
    public func replaceDataObject(label: String, value: [UInt8]) throws {
        let old = try dataObjectHandles(label: label)
        let template: [PKCS11Attribute] = [
            .ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_DATA)),
            .bool(CK_ATTRIBUTE_TYPE(CKA_TOKEN), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_PRIVATE), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_COPYABLE), false),
            .string(CK_ATTRIBUTE_TYPE(CKA_APPLICATION), "metertrust"),
            .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label),
            .bytes(CK_ATTRIBUTE_TYPE(CKA_VALUE), value),
        ]
        // SoftHSM2's file object store fails a creation now and then with CKR_GENERAL_ERROR or
        // CKR_TEMPLATE_INCONSISTENT while other sessions of the process work on the token (about 1 in 30,000 under
        // concurrent EST enrollments, each time for this object): nothing was created, so creating it again is safe.
        // Bounded: three attempts.
        let transient = [CK_RV(CKR_GENERAL_ERROR), CK_RV(CKR_TEMPLATE_INCONSISTENT)]
        for attempt in 1...3 {
            do {
                try createObject(template, context: "creating data object \(label)")
                break
            } catch let error as HSMError where error.returnValue.map(transient.contains) == true && attempt < 3 {
                usleep(UInt32(1_000 * attempt))
            }
        }
        for handle in old {
            // Another node may have replaced it first; what is gone is gone.
            try? destroyObject(handle, context: "destroying the previous data object \(label)")
        }
    }

    private func dataObjectHandles(label: String) throws -> [CK_OBJECT_HANDLE] {
        try findObjects([.ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_DATA)), .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label)])
    }
}
