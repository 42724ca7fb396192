# Documents and the departments that may read them (any one of them suffices).
package demo.documents

# Only reading is modelled, as in the reference demo; any other action is refused rather than
# silently treated as a read.
permitted_actions := {"read"}

# A document without a required_departments array is unknown, never public: a typo in the
# data must not open a document to everyone.
known(doc) if is_array(data.precinct.documents[doc].required_departments)

required(doc) := {d | some d in data.precinct.documents[doc].required_departments; is_string(d)}

# Public means an explicitly empty list of departments.
public(doc) if {
	known(doc)
	count(data.precinct.documents[doc].required_departments) == 0
}

# Any-of semantics: one shared department is enough.
grants(permissions, doc) if {
	some d in required(doc)
	d in permissions
}
