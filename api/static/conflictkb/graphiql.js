// Starts GraphiQL on /graphql (api/pages.py), with the query explorer and an Examples
// panel. A file rather than an inline script, so the page's Content-Security-Policy
// allows scripts from this server only. The examples come from the page (one list,
// schema/examples.py, which the front page links to as well).
//
// As strawberry's own page did: `?q=` and `?variables=` in the URL fill the editors, and
// the URL follows the editors, so a query can be shared as a link. (Not `?query=`: a GET
// with one is a GraphQL request, answered with its result.) Requests go to this page's
// URL with POST.
"use strict";
(function () {
  const h = React.createElement;
  const root = document.getElementById("graphiql");
  const examples = JSON.parse(root.dataset.examples);
  const parameters = new URLSearchParams(window.location.search);
  const fetcher = GraphiQL.createFetcher({ url: window.location.pathname });

  function updateURL(name, value) {
    const search = new URLSearchParams(window.location.search);
    if (value) {
      search.set(name, value);
    } else {
      search.delete(name);
    }
    const query = search.toString();
    history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
  }

  function ExamplesIcon() {
    return h("svg", { viewBox: "0 0 24 24", fill: "none", stroke: "currentColor", strokeWidth: 1.5,
                      "aria-hidden": "true" },
      h("path", { d: "M4 5.5A2.5 2.5 0 0 1 6.5 3H20v15H6.5A2.5 2.5 0 0 0 4 20.5v-15z" }),
      h("path", { d: "M4 20.5A2.5 2.5 0 0 0 6.5 23H20v-5M8 7h8M8 11h6" }));
  }

  function ExamplesContent() {
    const editors = GraphiQL.React.useEditorContext();
    function open(example) {
      editors.queryEditor.setValue(example.query);
      // at once: GraphiQL learns it from the editor a moment later, and a run in
      // between would ask for the operation of the query before
      editors.setOperationName(example.operationName);
      if (editors.variableEditor) {
        editors.variableEditor.setValue("");
      }
    }
    return h("section", { className: "ckb-examples", "aria-labelledby": "ckb-examples-title" },
      h("div", { className: "graphiql-doc-explorer-title", id: "ckb-examples-title" }, "Examples"),
      h("p", null, "Opens the query in the editor; run it with ▶ or Ctrl-Enter."),
      h("ul", null, examples.map(function (example) {
        return h("li", { key: example.title },
          h("button", { type: "button", className: "ckb-example", onClick: function () { open(example); } },
            example.title),
          h("p", null, example.description));
      })));
  }

  const examplesPlugin = { title: "Examples", icon: ExamplesIcon, content: ExamplesContent };
  const explorerPlugin = GraphiQLPluginExplorer.explorerPlugin();

  function App() {
    const linked = parameters.get("q");
    const [query, setQuery] = React.useState(linked || undefined);
    const [variables, setVariables] = React.useState(parameters.get("variables") || undefined);
    // the examples open at first, unless a link brought its own query
    const [visiblePlugin, setVisiblePlugin] = React.useState(linked ? null : examplesPlugin);
    return h(GraphiQL, {
      fetcher: fetcher,
      plugins: [examplesPlugin, explorerPlugin],
      visiblePlugin: visiblePlugin,
      onTogglePluginVisibility: setVisiblePlugin,
      defaultQuery: examples[0].query,
      query: query,
      variables: variables,
      onEditQuery: function (value) { setQuery(value); updateURL("q", value); },
      onEditVariables: function (value) { setVariables(value); updateURL("variables", value); },
      defaultEditorToolsVisibility: true,
      inputValueDeprecation: true,
      isHeadersEditorEnabled: true,
    });
  }

  ReactDOM.createRoot(root).render(h(App));
})();
