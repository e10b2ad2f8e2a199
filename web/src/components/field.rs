use yew::prelude::*;

/// A labelled input with its error beside it.
#[derive(Properties, PartialEq, Clone)]
pub struct FieldProps {
    /// The input's id (also names the error and hint).
    pub id: AttrValue,
    /// The visible label.
    pub label: AttrValue,
    /// The current value.
    pub value: AttrValue,
    /// Called with the new value on every keystroke.
    pub oninput: Callback<String>,
    /// `text`, `email`, `password`, …
    #[prop_or(AttrValue::Static("text"))]
    pub kind: AttrValue,
    /// The browser's autofill hint.
    #[prop_or_default]
    pub autocomplete: Option<AttrValue>,
    /// A short hint under the label.
    #[prop_or_default]
    pub hint: Option<AttrValue>,
    /// What is wrong with the value, from the API.
    #[prop_or_default]
    pub error: Option<String>,
    /// The mobile keyboard to show (`decimal`, …).
    #[prop_or_default]
    pub inputmode: Option<AttrValue>,
    /// Whether the field must be filled.
    #[prop_or(true)]
    pub required: bool,
}

/// A labelled input; an error is announced and tied to the input (`aria-describedby`).
#[function_component(Field)]
pub fn field(props: &FieldProps) -> Html {
    let oninput = {
        let callback = props.oninput.clone();
        Callback::from(move |e: InputEvent| {
            let input: web_sys::HtmlInputElement = e.target_unchecked_into();
            callback.emit(input.value());
        })
    };
    let error_id = format!("{}-error", props.id);
    let hint_id = format!("{}-hint", props.id);
    let described = [props.hint.as_ref().map(|_| hint_id.clone()), props.error.as_ref().map(|_| error_id.clone())]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    html! {
        <div class={classes!("field", props.error.is_some().then_some("field--invalid"))}>
            <label for={props.id.clone()}>{ props.label.clone() }</label>
            if let Some(hint) = &props.hint {
                <p class="field__hint" id={hint_id.clone()}>{ hint.clone() }</p>
            }
            <input
                id={props.id.clone()}
                name={props.id.clone()}
                type={props.kind.clone()}
                value={props.value.clone()}
                autocomplete={props.autocomplete.clone()}
                inputmode={props.inputmode.clone()}
                required={props.required}
                aria-invalid={props.error.is_some().then_some("true")}
                aria-describedby={(!described.is_empty()).then_some(described)}
                {oninput}
            />
            if let Some(error) = &props.error {
                <p class="field__error" id={error_id} role="alert">{ error.clone() }</p>
            }
        </div>
    }
}
