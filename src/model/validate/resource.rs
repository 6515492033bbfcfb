//! Validation of a service's `[[services.resources]]`: names, fields, types,
//! defaults, references, ownership and roles.

use std::collections::BTreeMap;

use toml::Spanned;

use super::Validator;
use crate::model::*;
use crate::raw::{RawField, RawResource};

impl Validator<'_> {
    /// One resource: its name and table, each field, then who may touch it.
    pub(super) fn resource(&mut self, key: &str, rr: Spanned<RawResource>) -> Option<Resource> {
        let at = rr.span();
        let rr = rr.into_inner();
        let name = self.resource_name(key, &rr);
        let plural = self.plural(key, &rr, name.as_deref());
        if rr.fields.is_empty() {
            self.err(
                &Spanned::new(at.clone(), ()),
                &format!("{key}.fields"),
                "a resource needs at least one field".into(),
                Some(r#"e.g. fields = { title = "string", published = "bool?" }"#.into()),
            );
        }
        let mut fields = Vec::new();
        for (fname, fty) in &rr.fields {
            if let Some(field) = self.field(key, &rr, fname, fty, &fields) {
                fields.push(field);
            }
        }
        if fields.len() > MAX_FIELDS {
            self.err(
                &Spanned::new(at.clone(), ()),
                &format!("{key}.fields"),
                format!(
                    "{} fields; accepted: at most {MAX_FIELDS} (the schema code generated for a wider resource overflows a 2 MiB thread stack in a debug build; PostgreSQL's own limit is {MAX_COLUMNS} columns)",
                    fields.len()
                ),
                Some("split the resource in two, joined by a `ref:` field".into()),
            );
        }
        if let Some(o) = &rr.owned {
            if *o.get_ref() && fields.iter().any(|f| f.name == OWNER_COLUMN) {
                self.err(
                    o,
                    &format!("{key}.owned"),
                    format!("an owned resource's rows get a column `{OWNER_COLUMN}` (the creator's user id, from the token), and a field has that name"),
                    Some(format!("rename the field, or drop it: `owned` fills `{OWNER_COLUMN}` itself")),
                );
            }
        }
        let roles = self.roles(key, rr.roles.as_ref());
        let owned = rr.owned.as_ref().is_some_and(|o| *o.get_ref());
        let name = name?;
        if owned || !roles.is_empty() {
            let (which, at) = match (&rr.owned, &rr.roles) {
                (Some(o), _) if owned => ("owned", o.span()),
                (_, Some(r)) => ("roles", r.span()),
                _ => ("owned", at),
            };
            let at = Spanned::new(at, ());
            self.guarded
                .insert(name.clone(), (format!("{key}.{which}"), at));
        }
        Some(Resource {
            name,
            plural: plural?,
            fields,
            owned,
            roles,
        })
    }

    /// A snake_case name that is neither a generated module's nor a type of
    /// Rust's prelude once in PascalCase.
    fn resource_name(&mut self, key: &str, rr: &RawResource) -> Option<String> {
        let name = check_snake(rr.name.get_ref())
            .map_err(|m| self.err(&rr.name, &format!("{key}.name"), m, None))
            .ok()
            .map(|_| rr.name.get_ref().clone())?;
        let reserved = RESERVED_RESOURCES.contains(&name.as_str());
        if reserved {
            self.err(
                &rr.name,
                &format!("{key}.name"),
                format!(
                    "`{name}` is reserved for a generated module; reserved: {}",
                    RESERVED_RESOURCES.join(", ")
                ),
                None,
            );
        }
        let prelude = PRELUDE_TYPES.contains(&name.as_str());
        if prelude {
            self.err(
                &rr.name,
                &format!("{key}.name"),
                format!(
                    "`{name}` would make a type `{}`, which would hide Rust's own; reserved: {}",
                    pascal(&name),
                    PRELUDE_TYPES.join(", ")
                ),
                Some(format!(
                    "e.g. `{name}_entry`, with `plural` to keep the path"
                )),
            );
        }
        (!reserved && !prelude).then_some(name)
    }

    /// The table's name and the path's last segment: `plural`, or the name's plural.
    fn plural(&mut self, key: &str, rr: &RawResource, name: Option<&str>) -> Option<String> {
        let plural = match &rr.plural {
            Some(p) => check_snake(p.get_ref())
                .map_err(|m| self.err(p, &format!("{key}.plural"), m, None))
                .ok()
                .map(|_| p.get_ref().clone()),
            None => name.map(pluralize),
        };
        if let Some(p) = plural.as_deref().filter(|p| RESERVED_TABLES.contains(p)) {
            let at = rr.plural.clone().unwrap_or_else(|| rr.name.clone());
            self.err(
                &at,
                &format!("{key}.plural"),
                format!(
                    "table `{p}` is reserved for msgen's own tables; reserved: {}",
                    RESERVED_TABLES.join(", ")
                ),
                Some("set another `plural`".into()),
            );
        }
        plural
    }

    /// One field: a free snake_case name, a known type, a default of that type, a
    /// former name (`renamed_from`) no other field claims. `earlier` are the
    /// resource's fields read so far.
    fn field(
        &mut self,
        key: &str,
        rr: &RawResource,
        fname: &str,
        fty: &Spanned<RawField>,
        earlier: &[Field],
    ) -> Option<Field> {
        let fkey = format!("{key}.fields.{fname}");
        if let Err(m) = check_snake(fname) {
            self.err(fty, &fkey, format!("field name: {m}"), None);
            return None;
        }
        for (reserved, why) in [
            (RESERVED_FIELDS, "is a column every resource has already"),
            (
                SYSTEM_COLUMNS,
                "is a system column of every PostgreSQL table",
            ),
        ] {
            if reserved.contains(&fname) {
                self.err(
                    fty,
                    &fkey,
                    format!("`{fname}` {why}"),
                    Some(format!("reserved field names: {}", reserved.join(", "))),
                );
                return None;
            }
        }
        let raw = fty.get_ref();
        let text = raw.ty.trim();
        let (base, optional) = match text.strip_suffix('?') {
            Some(b) => (b, true),
            None => (text, false),
        };
        let Some(ty) = FieldType::parse(base) else {
            let help = did_you_mean(base, FIELD_TYPES).map(|c| format!("did you mean `{c}`?"));
            self.err(
                fty,
                &fkey,
                format!(
                    "unknown field type {:?}; accepted: {} (add `?` for an optional field)",
                    raw.ty,
                    FIELD_TYPES.join(", ")
                ),
                help,
            );
            return None;
        };
        let default = match &raw.default {
            None => None,
            Some(v) => match DefaultValue::parse(v, &ty) {
                Ok(d) => Some(d),
                Err(m) => {
                    self.err(fty, &format!("{fkey}.default"), m, None);
                    None
                }
            },
        };
        let renamed_from = raw.renamed_from.as_ref().and_then(|old| {
            let problem = if let Err(m) = check_snake(old) {
                Some(m)
            } else if old == fname {
                Some("is the field's own name".to_string())
            } else if rr.fields.contains_key(old) {
                Some(format!("`{old}` is still a field of this resource"))
            } else {
                earlier
                    .iter()
                    .find(|f| f.renamed_from.as_deref() == Some(old.as_str()))
                    .map(|other| {
                        format!(
                            "field `{}` is already renamed from `{old}`: one column becomes one field",
                            other.name
                        )
                    })
            };
            match problem {
                Some(m) => {
                    self.err(
                        fty,
                        &format!("{fkey}.renamed_from"),
                        m,
                        Some("`renamed_from` names the field's former name, e.g. { type = \"string\", renamed_from = \"name\" }".into()),
                    );
                    None
                }
                None => Some(old.clone()),
            }
        });
        Some(Field {
            name: fname.to_string(),
            ty,
            optional,
            default,
            renamed_from,
        })
    }

    /// `roles = { delete = "admin" }`: each key an operation, each value a role.
    pub(super) fn roles(
        &mut self,
        key: &str,
        raw: Option<&Spanned<IndexMap<String, Spanned<String>>>>,
    ) -> BTreeMap<Operation, Role> {
        let mut out = BTreeMap::new();
        for (op, role) in raw.map(|r| r.get_ref().iter()).into_iter().flatten() {
            let rkey = format!("{key}.roles.{op}");
            let names = |all: &[&str]| all.join(", ");
            let Some(o) = Operation::ALL.into_iter().find(|o| o.as_str() == op) else {
                let all: Vec<&str> = Operation::ALL.iter().map(|o| o.as_str()).collect();
                self.err(
                    role,
                    &rkey,
                    format!("unknown operation {op:?}; accepted: {}", names(&all)),
                    did_you_mean(op, &all).map(|c| format!("did you mean `{c}`?")),
                );
                continue;
            };
            let Some(r) = Role::ALL.into_iter().find(|r| r.as_str() == role.get_ref()) else {
                let all: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                self.err(
                    role,
                    &rkey,
                    format!("unknown role {:?}; accepted: {}", role.get_ref(), names(&all)),
                    Some("every signed-in user has `user`; `admin` is granted (see the auth service's `grant-admin`)".into()),
                );
                continue;
            };
            out.insert(o, r);
        }
        out
    }
}
