//! `Encoder`: `shoal._dask_nodes.Encoder` in Rust — Dask `_task_spec` nodes of one group as
//! the plain tuples the executor runs (`shoal._dask_nodes.run_group`), element for element
//! what the Python encoder makes (the format is documented there). Not here: pickling, the
//! shared-function blobs, running the nodes.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple};

/// The tags of `shoal._dask_nodes` (`CALL, SUB, DATA, NODE`).
const CALL: u8 = 0;
const SUB: u8 = 1;
const DATA: u8 = 2;
const NODE: u8 = 3;

/// Why a node did not encode: a shape the encoding does not know (it then runs as Dask
/// runs it, as a `NODE`), or a Python error to raise.
enum Miss {
    Shape,
    Python(PyErr),
}

impl From<std::convert::Infallible> for Miss {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}

impl From<PyErr> for Miss {
    fn from(e: PyErr) -> Self {
        Miss::Python(e)
    }
}

type Encoded<'py> = Result<Bound<'py, PyAny>, Miss>;

#[pyclass(module = "shoal._native")]
pub struct Encoder {
    task_ref: Py<PyAny>,
    alias: Py<PyAny>,
    data_node: Py<PyAny>,
    graph_node: Py<PyAny>,
    calls: Vec<Py<PyAny>>,
    subgraph: Py<PyAny>,
    /// `id(inner)` -> `[inner, outkey, inkeys, plan, last arguments, last encoding]` within
    /// one group: inner graphs Dask shares between the nodes of a layer are encoded once per
    /// group (and kept alive, so ids stay theirs), and a node with the same arguments as the
    /// one before it is that node's encoding; cleared with each group, so that it never holds
    /// a whole graph.
    plans: Py<PyDict>,
}

struct Names<'py> {
    key: Bound<'py, PyString>,
    target: Bound<'py, PyString>,
    value: Bound<'py, PyString>,
    func: Bound<'py, PyString>,
    args: Bound<'py, PyString>,
    kwargs: Bound<'py, PyString>,
    dependencies: Bound<'py, PyString>,
    slot_dependencies: Bound<'py, PyString>,
}

impl<'py> Names<'py> {
    fn new(py: Python<'py>) -> Self {
        Names {
            key: pyo3::intern!(py, "key").clone(),
            target: pyo3::intern!(py, "target").clone(),
            value: pyo3::intern!(py, "value").clone(),
            func: pyo3::intern!(py, "func").clone(),
            args: pyo3::intern!(py, "args").clone(),
            kwargs: pyo3::intern!(py, "kwargs").clone(),
            dependencies: pyo3::intern!(py, "dependencies").clone(),
            slot_dependencies: pyo3::intern!(py, "_dependencies").clone(),
        }
    }
}

fn iterate<'py>(deps: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(set) = deps.cast::<PyFrozenSet>() {
        return Ok(set.iter().collect());
    }
    deps.try_iter()?.collect()
}

fn tuple<'py>(py: Python<'py>, items: Vec<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyTuple::new(py, items)?.into_any())
}

fn tag(py: Python<'_>, t: u8) -> Bound<'_, PyAny> {
    t.into_pyobject(py)
        .map(|v| v.into_any())
        .unwrap_or_else(|e| match e {})
}

impl Encoder {
    /// A known node's dependencies: the `_dependencies` slot behind `GraphNode.dependencies`
    /// (a Python property: reading the slot saves a call per node), the property for others.
    fn dependencies<'py>(
        &self,
        n: &Names<'py>,
        node: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = node.get_type();
        let t = t.as_any();
        if self.calls.iter().any(|c| t.is(c)) || t.is(&self.alias) || t.is(&self.data_node) {
            node.getattr(&n.slot_dependencies)
        } else {
            node.getattr(&n.dependencies)
        }
    }

    fn node<'py>(
        &self,
        py: Python<'py>,
        n: &Names<'py>,
        node: &Bound<'py, PyAny>,
        slot: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.encode(py, n, node, slot) {
            Ok(e) => Ok(e),
            Err(Miss::Python(e)) => Err(e),
            Err(Miss::Shape) => {
                let mut deps = Vec::new();
                for d in iterate(&node.getattr(&n.dependencies)?)? {
                    let s = slot.get_item(&d)?.ok_or_else(|| {
                        PyValueError::new_err(format!("a dependency of a Dask node is neither an input nor an earlier node: {d}"))
                    })?;
                    deps.push(tuple(py, vec![d, s])?);
                }
                tuple(py, vec![tag(py, NODE), node.clone(), tuple(py, deps)?])
            }
        }
    }

    fn is_node(&self, py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(v.is_instance(self.graph_node.bind(py))? || v.is_instance(self.task_ref.bind(py))?)
    }

    fn encode<'py>(
        &self,
        py: Python<'py>,
        n: &Names<'py>,
        a: &Bound<'py, PyAny>,
        slot: &Bound<'py, PyDict>,
    ) -> Encoded<'py> {
        let t = a.get_type();
        let t = t.as_any();
        if t.is(&self.task_ref) {
            return slot.get_item(a.getattr(&n.key)?)?.ok_or(Miss::Shape);
        }
        if t.is(&self.alias) {
            return slot.get_item(a.getattr(&n.target)?)?.ok_or(Miss::Shape);
        }
        if t.is(&self.data_node) {
            return Ok(tuple(py, vec![tag(py, DATA), a.getattr(&n.value)?])?);
        }
        if self.calls.iter().any(|c| t.is(c)) {
            let func = a.getattr(&n.func)?;
            let args = a.getattr(&n.args)?;
            if func.is(&self.subgraph) {
                return self.subgraph(py, n, &args, slot);
            }
            let (args, dyn_args) = self.arguments(py, n, &args, slot)?;
            let kwargs = a.getattr(&n.kwargs)?;
            let kwargs = kwargs.cast::<PyDict>().map_err(|_| Miss::Shape)?;
            let mut dyn_kwargs = Vec::new();
            let mut plain = kwargs.clone();
            for (name, v) in kwargs.iter() {
                if self.is_node(py, &v)? {
                    if dyn_kwargs.is_empty() {
                        plain = kwargs.copy()?;
                    }
                    dyn_kwargs.push(tuple(
                        py,
                        vec![name.clone(), self.encode(py, n, &v, slot)?],
                    )?);
                    plain.del_item(&name)?;
                }
            }
            let plain = if plain.is_empty() {
                py.None().into_bound(py)
            } else {
                plain.into_any()
            };
            return Ok(tuple(
                py,
                vec![
                    tag(py, CALL),
                    func,
                    args,
                    plain,
                    dyn_args,
                    tuple(py, dyn_kwargs)?,
                ],
            )?);
        }
        // Any other GraphNode (or something else): run as Dask runs it.
        Err(Miss::Shape)
    }

    /// A call's arguments: the plain ones in place (a `DataNode` as its value, computed
    /// ones as None) and the computed ones as `(index, e)`.
    fn arguments<'py>(
        &self,
        py: Python<'py>,
        n: &Names<'py>,
        args: &Bound<'py, PyAny>,
        slot: &Bound<'py, PyDict>,
    ) -> Result<(Bound<'py, PyAny>, Bound<'py, PyAny>), Miss> {
        let items = args.cast::<PyTuple>().map_err(|_| Miss::Shape)?;
        let mut any = false;
        for v in items.iter() {
            if self.is_node(py, &v)? {
                any = true;
                break;
            }
        }
        if !any {
            return Ok((args.clone(), PyTuple::empty(py).into_any()));
        }
        let mut plain = Vec::with_capacity(items.len());
        let mut dynamic = Vec::new();
        for (i, v) in items.iter().enumerate() {
            if v.get_type().is(&self.data_node) {
                plain.push(v.getattr(&n.value)?);
            } else if self.is_node(py, &v)? {
                dynamic.push(tuple(
                    py,
                    vec![
                        i.into_pyobject(py)?.into_any(),
                        self.encode(py, n, &v, slot)?,
                    ],
                )?);
                plain.push(py.None().into_bound(py));
            } else {
                plain.push(v);
            }
        }
        Ok((tuple(py, plain)?, tuple(py, dynamic)?))
    }

    fn subgraph<'py>(
        &self,
        py: Python<'py>,
        n: &Names<'py>,
        args: &Bound<'py, PyAny>,
        slot: &Bound<'py, PyDict>,
    ) -> Encoded<'py> {
        let items = args.cast::<PyTuple>().map_err(|_| Miss::Shape)?;
        if items.len() < 3 {
            return Err(Miss::Shape);
        }
        let inner = items.get_item(0)?;
        let outkey = items.get_item(1)?;
        let inkeys = PyTuple::new(py, iterate(&items.get_item(2)?)?)?;
        let plans = self.plans.bind(py);
        let id = (inner.as_ptr() as usize).into_pyobject(py)?;
        let mut entry = None;
        if let Some(found) = plans.get_item(&id)? {
            let found = found.cast_into::<PyList>().map_err(|_| Miss::Shape)?;
            if found.get_item(1)?.eq(&outkey)? && found.get_item(2)?.eq(&inkeys)? {
                entry = Some(found);
            }
        }
        let entry = match entry {
            Some(entry) => entry,
            None => {
                let plan = self.plan(py, n, &inner, &outkey, &inkeys)?;
                let entry = PyList::new(
                    py,
                    [
                        inner.clone(),
                        outkey.clone(),
                        inkeys.clone().into_any(),
                        plan,
                        PyTuple::empty(py).into_any(),
                        py.None().into_bound(py),
                    ],
                )?;
                plans.set_item(&id, &entry)?;
                entry
            }
        };
        let args = items.get_slice(3, items.len());
        let last = entry.get_item(5)?;
        if !last.is_none() {
            let before = entry.get_item(4)?;
            let before = before.cast::<PyTuple>().map_err(|_| Miss::Shape)?;
            let mut same = before.len() == args.len();
            for (a, b) in args.iter().zip(before.iter()) {
                same = same && self.same(n, &a, &b)?;
            }
            if same {
                // The same arguments as the node before: within a group they encode the same.
                return Ok(last);
            }
        }
        let mut deps = Vec::new();
        for a in args.iter() {
            if self.is_node(py, &a)? {
                deps.push(self.encode(py, n, &a, slot)?);
            } else {
                deps.push(tuple(py, vec![tag(py, DATA), a])?);
            }
        }
        if deps.len() != inkeys.len() {
            return Err(Miss::Shape);
        }
        let encoded = tuple(py, vec![tag(py, SUB), entry.get_item(3)?, tuple(py, deps)?])?;
        entry.set_item(4, args)?;
        entry.set_item(5, &encoded)?;
        Ok(encoded)
    }

    /// Whether arguments `a` and `b` of a fused node encode the same in one group: one
    /// object, or data nodes of one value or of equal shapes (`_dask_nodes.Encoder._same`).
    fn same<'py>(
        &self,
        n: &Names<'py>,
        a: &Bound<'py, PyAny>,
        b: &Bound<'py, PyAny>,
    ) -> PyResult<bool> {
        if a.is(b) {
            return Ok(true);
        }
        if !a.get_type().is(&self.data_node) || !b.get_type().is(&self.data_node) {
            return Ok(false);
        }
        let (x, y) = (a.getattr(&n.value)?, b.getattr(&n.value)?);
        if x.is(&y) {
            return Ok(true);
        }
        let (Ok(x), Ok(y)) = (x.cast_exact::<PyTuple>(), y.cast_exact::<PyTuple>()) else {
            return Ok(false);
        };
        let ints = |t: &Bound<'py, PyTuple>| t.iter().all(|v| v.is_exact_instance_of::<PyInt>());
        if x.len() != y.len() || !ints(x) || !ints(y) {
            return Ok(false);
        }
        x.eq(y)
    }

    /// The inner nodes `outkey` needs, in dependency order, over local slots (the inputs
    /// first): the walk of the Python encoder's `_plan`, step for step.
    fn plan<'py>(
        &self,
        py: Python<'py>,
        n: &Names<'py>,
        inner: &Bound<'py, PyAny>,
        outkey: &Bound<'py, PyAny>,
        inkeys: &Bound<'py, PyTuple>,
    ) -> Encoded<'py> {
        let inner = inner.cast::<PyDict>().map_err(|_| Miss::Shape)?;
        let local = PyDict::new(py);
        for (i, k) in inkeys.iter().enumerate() {
            local.set_item(k, i)?;
        }
        let entered = PySet::empty(py)?;
        let mut order = Vec::new();
        let mut stack = vec![(outkey.clone(), false)];
        while let Some((key, ready)) = stack.pop() {
            if ready {
                order.push(key);
                continue;
            }
            if entered.contains(&key)? || local.contains(&key)? {
                continue;
            }
            entered.add(&key)?;
            let node = inner.get_item(&key)?.ok_or(Miss::Shape)?;
            stack.push((key, true));
            for d in iterate(&self.dependencies(n, &node)?)? {
                if !entered.contains(&d)? && !local.contains(&d)? {
                    stack.push((d, false));
                }
            }
        }
        let mut plan = Vec::with_capacity(order.len());
        for key in order {
            let node = inner.get_item(&key)?.ok_or(Miss::Shape)?;
            plan.push(self.encode(py, n, &node, &local)?);
            local.set_item(&key, local.len())?;
        }
        Ok(tuple(py, plan)?)
    }
}

#[pymethods]
impl Encoder {
    /// `Encoder(task_spec)`: over the node classes of the module `dask._task_spec`.
    #[new]
    fn new(ts: &Bound<'_, PyAny>) -> PyResult<Self> {
        let get = |name: &str| ts.getattr(name).map(Bound::unbind);
        Ok(Encoder {
            task_ref: get("TaskRef")?,
            alias: get("Alias")?,
            data_node: get("DataNode")?,
            graph_node: get("GraphNode")?,
            calls: ["Task", "List", "Tuple", "Set", "Dict"]
                .into_iter()
                .map(get)
                .collect::<PyResult<_>>()?,
            subgraph: get("_execute_subgraph")?,
            plans: PyDict::new(ts.py()).unbind(),
        })
    }

    /// `group(graph, members, inputs)`: ``(keys, nodes)`` as
    /// ``shoal._dask_nodes.Encoder.group`` makes them.
    fn group<'py>(
        &self,
        py: Python<'py>,
        graph: &Bound<'py, PyDict>,
        members: &Bound<'py, PyAny>,
        inputs: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let n = Names::new(py);
        self.plans.bind(py).clear();
        let slot = PyDict::new(py);
        let mut base = 0usize;
        for k in inputs.try_iter()? {
            slot.set_item(k?, base)?;
            base += 1;
        }
        let members: Vec<Bound<'py, PyAny>> = members.try_iter()?.collect::<PyResult<_>>()?;
        let inside = PySet::empty(py)?;
        if members.len() > 1 {
            for m in &members {
                inside.add(m)?;
            }
        }
        let mut nodes = Vec::with_capacity(members.len());
        for (i, key) in members.iter().enumerate() {
            let node = graph
                .get_item(key)?
                .ok_or_else(|| PyValueError::new_err(format!("{key} is not in the graph")))?;
            let e = self.node(py, &n, &node, &slot)?;
            let mut release = Vec::new();
            for d in iterate(&self.dependencies(&n, &node)?)? {
                if inside.contains(&d)? {
                    release.push(slot.get_item(&d)?.ok_or_else(|| {
                        PyValueError::new_err(format!("{d} runs after its consumer"))
                    })?);
                }
            }
            nodes.push(tuple(py, vec![e, tuple(py, release)?])?);
            slot.set_item(key, base + i)?;
        }
        PyTuple::new(py, [tuple(py, members)?, tuple(py, nodes)?])
    }
}
