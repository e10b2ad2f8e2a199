use gloo::timers::callback::Timeout;
use yew::prelude::*;

/// How long typing must pause before a search goes out.
pub const DEBOUNCE_MS: u32 = 250;

/// Properties of [`SearchBox`].
#[derive(Properties, PartialEq, Clone)]
pub struct SearchBoxProps {
    /// The input's id.
    pub id: AttrValue,
    /// The visible label.
    pub label: AttrValue,
    /// The search now in effect (from the address).
    pub value: AttrValue,
    /// Called with the words once typing pauses for [`DEBOUNCE_MS`], or at once on Enter.
    pub onsearch: Callback<String>,
}

/// A search field that searches as one types: a keystroke waits [`DEBOUNCE_MS`] for the next
/// one, so a word typed quickly sends one search, not one per letter.
#[function_component(SearchBox)]
pub fn search_box(props: &SearchBoxProps) -> Html {
    let text = use_state(|| props.value.to_string());
    let pending = use_mut_ref(|| None::<Timeout>);
    // What the box last searched for itself: the address then says the same, trimmed.
    let sent = use_mut_ref(|| props.value.to_string());
    {
        // The address changed under the box (back, a link): show what is searched. Not when it is
        // the box's own search coming back (trimmed), which would eat the space typed after the
        // last word, or what was typed since.
        let (text, sent) = (text.setter(), sent.clone());
        use_effect_with(props.value.clone(), move |value| {
            if sent.borrow().trim() != value.trim() {
                *sent.borrow_mut() = value.to_string();
                text.set(value.to_string());
            }
        });
    }
    let oninput = {
        let (text, pending, onsearch, sent) = (text.setter(), pending.clone(), props.onsearch.clone(), sent.clone());
        Callback::from(move |e: InputEvent| {
            let input: web_sys::HtmlInputElement = e.target_unchecked_into();
            let value = input.value();
            text.set(value.clone());
            let (onsearch, sent) = (onsearch.clone(), sent.clone());
            // Replacing the timer drops (cancels) the one before.
            *pending.borrow_mut() = Some(Timeout::new(DEBOUNCE_MS, move || {
                *sent.borrow_mut() = value.clone();
                onsearch.emit(value);
            }));
        })
    };
    let onsubmit = {
        let (text, pending, onsearch) = (text.clone(), pending.clone(), props.onsearch.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            pending.borrow_mut().take();
            *sent.borrow_mut() = (*text).clone();
            onsearch.emit((*text).clone());
        })
    };
    html! {
        <form class="search" role="search" {onsubmit}>
            <label for={props.id.clone()}>{ props.label.clone() }</label>
            <input id={props.id.clone()} type="search" name="search" value={(*text).clone()} {oninput}
                autocomplete="off" spellcheck="false" maxlength="200" />
        </form>
    }
}
